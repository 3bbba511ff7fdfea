package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/piimage/piimage/image/flash"
	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/image/ota/otaimage"
	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/ota"
)

func updateCommand() command {
	return command{
		name:  "update",
		short: "push a signed image to one node and wait until it commits or rolls back (--node ADDR IMAGE)",
		run:   runUpdate,
	}
}

type updateFlags struct {
	node    string
	keys    string
	src     string
	full    bool
	timeout time.Duration
}

func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f updateFlags
	fset := newFlagSet("update", "update --node ADDR[:PORT] [flags] IMAGE", stderr)
	fset.StringVar(&f.node, "node", "", "the node's admin address, IP[:PORT] (port 9000 by default); never the VIP")
	fset.StringVar(&f.keys, "keys", "", "the cluster's keys folder, for the admin token and certificate (default: .keys in the source tree)")
	fset.StringVar(&f.src, "src", "", "piimage source tree (default: found from the current folder)")
	fset.BoolVar(&f.full, "full", false, "send every byte, even those the node already has")
	fset.DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up waiting for the outcome after this long")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || f.node == "" {
		return &usageError{"update: give --node ADDR and one image file"}
	}
	dir, err := keysDir(f.keys, f.src)
	if err != nil {
		return err
	}
	c, err := newAdminClient(f.node, dir)
	if err != nil {
		return err
	}
	file, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer file.Close()
	img, err := otaimage.Open(file)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	out, err := pushUpdate(ctx, c, img, updateOptions{full: f.full, out: stdout, progress: progressWriter(stderr)})
	if err != nil {
		return err
	}
	return out.err()
}

func progressWriter(w io.Writer) *flash.ProgressPrinter {
	pp := &flash.ProgressPrinter{W: w, Every: 2 * time.Second}
	if f, ok := w.(*os.File); ok {
		pp.Terminal = flash.IsTerminal(f)
	}
	return pp
}

// adminClient talks to one node's authenticated admin API.
type adminClient struct {
	base  string // https://IP:PORT
	token string
	http  *http.Client
}

// newAdminClient returns a client for node (IP or IP:PORT) that pins the
// cluster certificate of keysDir and sends its token.
func newAdminClient(node, keysDir string) (*adminClient, error) {
	if _, _, err := net.SplitHostPort(node); err != nil {
		node = net.JoinHostPort(node, "9000")
	}
	cred, err := loadCredential(keysDir)
	if err != nil {
		return nil, fmt.Errorf("reading the cluster's admin credential: %w (the keys folder the images were built with, --keys)", err)
	}
	pin, err := cred.Pin()
	if err != nil {
		return nil, err
	}
	return &adminClient{
		base:  "https://" + node,
		token: cred.Token,
		http: &http.Client{Transport: &http.Transport{
			TLSClientConfig:     admin.ClientTLSConfig(pin),
			TLSHandshakeTimeout: 10 * time.Second,
			DisableKeepAlives:   true,
		}},
	}, nil
}

func (c *adminClient) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return c.http.Do(req)
}

// getJSON GETs path into v.
func (c *adminClient) getJSON(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}

type updateOptions struct {
	full     bool
	out      io.Writer
	progress *flash.ProgressPrinter
	// poll is how often the outcome is asked for; 0 means 2 s.
	poll time.Duration
}

// updateOutcome is how one node's update ended.
type updateOutcome struct {
	Node    string
	Version string
	Slot    string
	// Result is ota.ResultCommitted or ota.ResultRolledBack; Reason says
	// why it rolled back.
	Result string
	Reason string
	// Sent is the payload bytes sent; Took runs from the start to the
	// outcome.
	Sent int64
	Took time.Duration
}

func (o *updateOutcome) err() error {
	if o.Result == ota.ResultCommitted {
		return nil
	}
	return fmt.Errorf("%s: %s rolled back: %s", o.Node, o.Version, o.Reason)
}

// pushUpdate sends img's payload to the node, then waits for the trial's
// outcome. An error means the update did not get as far as a trial (for
// instance it was refused); a rollback is an outcome, not an error.
func pushUpdate(ctx context.Context, c *adminClient, img *otaimage.Image, o updateOptions) (*updateOutcome, error) {
	start := time.Now()
	if img.Manifest == nil {
		return nil, errors.New("the image is not signed: build it with --key or run piimage sign")
	}
	m := img.Manifest
	var st ota.Status
	if err := c.getJSON(ctx, "/ota", &st); err != nil {
		return nil, fmt.Errorf("asking %s for its slots: %w", c.base, err)
	}
	fmt.Fprintf(o.out, "%s: board %s, running slot %s (%s)\n", c.base, st.Board, st.Booted, slotVersion(st, st.Booted))
	if st.Trial != nil {
		return nil, fmt.Errorf("%s: %s is still on trial in slot %s; wait for it to commit or roll back", c.base, st.Trial.Version, st.Trial.Slot)
	}
	have := map[imgota.Digest]bool{}
	if !o.full {
		var h admin.Have
		if err := c.getJSON(ctx, "/ota/have", &h); err != nil {
			return nil, err
		}
		for _, s := range h.Have {
			var d imgota.Digest
			if d.UnmarshalText([]byte(s)) == nil {
				have[d] = true
			}
		}
	}
	hasIt := func(d imgota.Digest) bool { return have[d] }
	var base []imgota.Digest
	if !o.full {
		// The root goes as a delta against the running one when the node
		// can say what that is.
		var rc admin.RootChunks
		if err := c.getJSON(ctx, "/ota/root-chunks", &rc); err == nil && rc.ChunkSize == imgota.ChunkSize {
			base = make([]imgota.Digest, len(rc.SHA256))
			for i, s := range rc.SHA256 {
				if base[i].UnmarshalText([]byte(s)) != nil {
					base = nil
					break
				}
			}
		}
	}
	total, err := img.PayloadSize(hasIt, base)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.out, "sending %s (%s, %d files) to slot %s: %.1f MB of %.1f MB (the node has the rest)\n",
		m.Version, m.Board, len(m.Files), otherSlot(st.Booted), float64(total)/1e6, float64(m.TotalSize())/1e6)

	pr, pw := io.Pipe()
	cw := &countingWriter{w: pw, total: total, progress: o.progress, start: time.Now()}
	go func() {
		_, err := img.WritePayload(cw, hasIt, base)
		pw.CloseWithError(err)
	}()
	resp, err := c.do(ctx, "POST", "/ota/update", pr)
	pr.CloseWithError(errors.New("request done"))
	if o.progress != nil {
		o.progress.Finish()
	}
	if err != nil {
		return nil, fmt.Errorf("sending the update to %s: %w", c.base, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ue admin.UpdateError
		if json.Unmarshal(body, &ue) == nil && ue.Error != "" {
			if ue.Refused {
				return nil, fmt.Errorf("%s refused the update (nothing was written): %s", c.base, ue.Error)
			}
			return nil, fmt.Errorf("%s failed to write the update (it still boots %s): %s", c.base, slotVersion(st, st.Booted), ue.Error)
		}
		return nil, fmt.Errorf("%s: %s: %s", c.base, resp.Status, strings.TrimSpace(string(body)))
	}
	var res ota.Result
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("reading the node's answer: %w", err)
	}
	how := "reboots into it"
	if res.TryBoot {
		how = "reboots into it once (tryboot)"
	}
	fmt.Fprintf(o.out, "written and verified on the node in %.1fs (%.1f MB received, %.1f MB copied from slot %s, %.1f MB already there); it %s for a trial\n",
		res.Took.Seconds(), float64(res.Received)/1e6, float64(res.Copied)/1e6, st.Booted, float64(res.Kept)/1e6, how)
	out, err := waitOutcome(ctx, c, res, o)
	if err != nil {
		return nil, err
	}
	out.Sent, out.Took = cw.n, time.Since(start)
	switch out.Result {
	case ota.ResultCommitted:
		fmt.Fprintf(o.out, "committed: %s runs %s in slot %s (%.0fs from the start, %.1f MB sent)\n", c.base, out.Version, out.Slot, out.Took.Seconds(), float64(out.Sent)/1e6)
	default:
		prev := res.Previous
		if prev == "" {
			prev = "its previous version"
		}
		fmt.Fprintf(o.out, "rolled back: %s runs %s again (%.0fs from the start): %s\n", c.base, prev, out.Took.Seconds(), out.Reason)
	}
	return out, nil
}

// waitOutcome polls GET /ota until the node reports the outcome of res.
func waitOutcome(ctx context.Context, c *adminClient, res ota.Result, o updateOptions) (*updateOutcome, error) {
	poll := o.poll
	if poll == 0 {
		poll = 2 * time.Second
	}
	said := ""
	say := func(s string) {
		if s != said {
			fmt.Fprintln(o.out, s)
			said = s
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s to commit or roll back %s: %w (last: %s)", c.base, res.Version, ctx.Err(), said)
		case <-time.After(poll):
		}
		var st ota.Status
		if err := c.getJSON(ctx, "/ota", &st); err != nil {
			say("waiting for the node to come back...")
			continue
		}
		if l := st.Last; l != nil && l.ID == res.ID {
			return &updateOutcome{Node: c.base, Version: l.Version, Slot: l.Slot, Result: l.Result, Reason: l.Reason}, nil
		}
		if t := st.Trial; t != nil && t.ID == res.ID {
			if st.Booted == t.Slot {
				say(fmt.Sprintf("trial boot %d of %d: %s runs in slot %s, checking its health", t.Boots, t.MaxBoots, t.Version, t.Slot))
			} else {
				say("the node has not rebooted into the trial yet")
			}
		}
	}
}

func slotVersion(st ota.Status, slot string) string {
	for _, s := range st.Slots {
		if s.Slot == slot && s.Version != "" {
			return s.Version
		}
	}
	return "unknown version"
}

func otherSlot(s string) string { return imgota.Other(s) }

// countingWriter counts the payload bytes and reports progress.
type countingWriter struct {
	w        io.Writer
	n, total int64
	progress *flash.ProgressPrinter
	start    time.Time
	ended    bool
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	// The stream's headers make it a little longer than total: show the
	// end once.
	if c.progress != nil && !c.ended {
		c.ended = c.n >= c.total
		c.progress.Update(flash.Progress{Phase: "sending", Done: min(c.n, c.total), Total: c.total, Elapsed: time.Since(c.start)})
	}
	return n, err
}
