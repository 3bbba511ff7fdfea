package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/piimage/piimage/image/flash"
	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/image/ota/otaimage"
	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/ota"
)

// PushOptions say how Push sends and reports.
type PushOptions struct {
	// Full sends every byte, even those the node already has.
	Full bool
	// Out receives one line per step; Progress, when set, shows the
	// sending.
	Out      io.Writer
	Progress *flash.ProgressPrinter
	// Poll is how often the outcome is asked for; 0 means 2 s.
	Poll time.Duration
}

// Outcome is how one node's update ended.
type Outcome struct {
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

// Err is nil for a committed update and says why otherwise.
func (o *Outcome) Err() error {
	if o.Result == ota.ResultCommitted {
		return nil
	}
	return fmt.Errorf("%s: %s rolled back: %s", o.Node, o.Version, o.Reason)
}

// Push sends img's payload to the node, then waits for the trial's
// outcome. An error means the update did not get as far as a trial (for
// instance it was refused); a rollback is an outcome, not an error.
func Push(ctx context.Context, c *Client, img *otaimage.Image, o PushOptions) (*Outcome, error) {
	start := time.Now()
	if img.Manifest == nil {
		return nil, errors.New("the image is not signed: build it with --key or run piimage sign")
	}
	m := img.Manifest
	var st ota.Status
	if err := c.GetJSON(ctx, "/ota", &st); err != nil {
		return nil, fmt.Errorf("asking %s for its slots: %w", c.Base, err)
	}
	fmt.Fprintf(o.Out, "%s: board %s, running slot %s (%s)\n", c.Base, st.Board, st.Booted, SlotVersion(st, st.Booted))
	if st.Trial != nil {
		return nil, fmt.Errorf("%s: %s is still on trial in slot %s; wait for it to commit or roll back", c.Base, st.Trial.Version, st.Trial.Slot)
	}
	have := map[imgota.Digest]bool{}
	if !o.Full {
		var h admin.Have
		if err := c.GetJSON(ctx, "/ota/have", &h); err != nil {
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
	if !o.Full {
		// The root goes as a delta against the running one when the node
		// can say what that is.
		var rc admin.RootChunks
		if err := c.GetJSON(ctx, "/ota/root-chunks", &rc); err == nil && rc.ChunkSize == imgota.ChunkSize {
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
	fmt.Fprintf(o.Out, "sending %s (%s, %d files) to slot %s: %.1f MB of %.1f MB (the node has the rest)\n",
		m.Version, m.Board, len(m.Files), imgota.Other(st.Booted), float64(total)/1e6, float64(m.TotalSize())/1e6)

	pr, pw := io.Pipe()
	cw := &countingWriter{w: pw, total: total, progress: o.Progress, start: time.Now()}
	go func() {
		_, err := img.WritePayload(cw, hasIt, base)
		pw.CloseWithError(err)
	}()
	resp, err := c.Do(ctx, "POST", "/ota/update", pr)
	pr.CloseWithError(errors.New("request done"))
	if o.Progress != nil {
		o.Progress.Finish()
	}
	if err != nil {
		return nil, fmt.Errorf("sending the update to %s: %w", c.Base, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ue admin.UpdateError
		if json.Unmarshal(body, &ue) == nil && ue.Error != "" {
			if ue.Refused {
				return nil, fmt.Errorf("%s refused the update (nothing was written): %s", c.Base, ue.Error)
			}
			return nil, fmt.Errorf("%s failed to write the update (it still boots %s): %s", c.Base, SlotVersion(st, st.Booted), ue.Error)
		}
		return nil, fmt.Errorf("%s: %s: %s", c.Base, resp.Status, strings.TrimSpace(string(body)))
	}
	var res ota.Result
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("reading the node's answer: %w", err)
	}
	how := "reboots into it"
	if res.TryBoot {
		how = "reboots into it once (tryboot)"
	}
	fmt.Fprintf(o.Out, "written and verified on the node in %.1fs (%.1f MB received, %.1f MB copied from slot %s, %.1f MB already there); it %s for a trial\n",
		res.Took.Seconds(), float64(res.Received)/1e6, float64(res.Copied)/1e6, st.Booted, float64(res.Kept)/1e6, how)
	out, err := waitOutcome(ctx, c, res, o)
	if err != nil {
		return nil, err
	}
	out.Sent, out.Took = cw.n, time.Since(start)
	switch out.Result {
	case ota.ResultCommitted:
		fmt.Fprintf(o.Out, "committed: %s runs %s in slot %s (%.0fs from the start, %.1f MB sent)\n", c.Base, out.Version, out.Slot, out.Took.Seconds(), float64(out.Sent)/1e6)
	default:
		prev := res.Previous
		if prev == "" {
			prev = "its previous version"
		}
		fmt.Fprintf(o.Out, "rolled back: %s runs %s again (%.0fs from the start): %s\n", c.Base, prev, out.Took.Seconds(), out.Reason)
	}
	return out, nil
}

// waitOutcome polls GET /ota until the node reports the outcome of res.
func waitOutcome(ctx context.Context, c *Client, res ota.Result, o PushOptions) (*Outcome, error) {
	poll := o.Poll
	if poll == 0 {
		poll = 2 * time.Second
	}
	said := ""
	say := func(s string) {
		if s != said {
			fmt.Fprintln(o.Out, s)
			said = s
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s to commit or roll back %s: %w (last: %s)", c.Base, res.Version, ctx.Err(), said)
		case <-time.After(poll):
		}
		var st ota.Status
		if err := c.GetJSON(ctx, "/ota", &st); err != nil {
			say("waiting for the node to come back...")
			continue
		}
		if l := st.Last; l != nil && l.ID == res.ID {
			if l.Result == ota.ResultRolledBack && st.Booted == l.Slot {
				// Recorded, but the node still runs the failed slot: it
				// reboots into the previous one next.
				say(fmt.Sprintf("%s rolled back (%s); waiting for the node to restart into slot %s", l.Version, l.Reason, imgota.Other(l.Slot)))
				continue
			}
			return &Outcome{Node: c.Base, Version: l.Version, Slot: l.Slot, Result: l.Result, Reason: l.Reason}, nil
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

// SlotVersion is the version slot holds according to st.
func SlotVersion(st ota.Status, slot string) string {
	for _, s := range st.Slots {
		if s.Slot == slot && s.Version != "" {
			return s.Version
		}
	}
	return "unknown version"
}

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
