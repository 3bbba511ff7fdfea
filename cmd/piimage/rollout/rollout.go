package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"sort"
	"time"

	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/image/ota/otaimage"
	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/ota"
)

// Image is a signed image with the role it was built for.
type Image struct {
	Path string
	File *os.File
	Img  *otaimage.Image
	Role string
}

// OpenImage opens a signed image; Close its File when done.
func OpenImage(p string) (*Image, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	img, err := otaimage.Open(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if img.Manifest == nil {
		f.Close()
		return nil, fmt.Errorf("%s is not signed: build it with --key or run piimage sign", p)
	}
	b, err := fs.ReadFile(img.Boot(), path.Join(imgota.SlotDir(img.Slot), "release.json"))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var rel struct {
		Role string `json:"role"`
	}
	if err := json.Unmarshal(b, &rel); err != nil || rel.Role == "" {
		f.Close()
		return nil, fmt.Errorf("%s: release.json names no role", p)
	}
	return &Image{Path: p, File: f, Img: img, Role: rel.Role}, nil
}

// Step is one node to update with one image.
type Step struct {
	Node  *overlays.Node
	Image *Image
}

// Plan orders the nodes that have an image for their role: the backup
// balancer first, then the master (which hands its VIP to the backup
// before it reboots), then the web nodes one by one, by hostname.
func Plan(nodes []*overlays.Node, imgs []*Image) ([]Step, error) {
	byRole := map[string]*Image{}
	for _, ri := range imgs {
		if prev, ok := byRole[ri.Role]; ok {
			return nil, fmt.Errorf("two images for role %s: %s and %s", ri.Role, prev.Path, ri.Path)
		}
		byRole[ri.Role] = ri
	}
	rank := map[string]int{overlays.RoleLBBackup: 0, overlays.RoleLBMaster: 1, overlays.RoleWeb: 2}
	var plan []Step
	for _, n := range nodes {
		ri, ok := byRole[n.Role]
		if !ok {
			continue
		}
		if b := n.BoardOrDefault(); b != ri.Img.Manifest.Board {
			return nil, fmt.Errorf("%s is a %s; %s is for %s", n.Hostname, b, ri.Path, ri.Img.Manifest.Board)
		}
		plan = append(plan, Step{Node: n, Image: ri})
	}
	sort.SliceStable(plan, func(i, j int) bool {
		a, b := plan[i].Node, plan[j].Node
		if rank[a.Role] != rank[b.Role] {
			return rank[a.Role] < rank[b.Role]
		}
		return a.Hostname < b.Hostname
	})
	if len(plan) == 0 {
		return nil, fmt.Errorf("no node of the cluster has the role of these images")
	}
	for role, ri := range byRole {
		found := false
		for _, s := range plan {
			found = found || s.Image == ri
		}
		if !found {
			return nil, fmt.Errorf("%s is for role %s, which no node of the cluster has", ri.Path, role)
		}
	}
	return plan, nil
}

// Options say how Run reaches the nodes and updates each.
type Options struct {
	// Cluster is every node of the cluster: the load balancers among them
	// are asked to drain a web node before it reboots.
	Cluster []*overlays.Node
	// Client returns the admin client of a node.
	Client func(*overlays.Node) (*Client, error)
	Push   PushOptions
	// Timeout bounds one node's update.
	Timeout time.Duration
	// Out receives the rollout's own lines (Push.Out the updates').
	Out io.Writer
}

// out is where the rollout's lines go.
func (o Options) out() io.Writer {
	if o.Out == nil {
		return io.Discard
	}
	return o.Out
}

// Summary is what a rollout did.
type Summary struct {
	Updated []string // hostnames committed, in order
	Skipped []string // hostnames that already ran the version
	Sent    int64
	Took    time.Duration
}

// AdminAddr is a node's admin API address: its eth0 address (never the
// VIP) and its admin port.
func AdminAddr(n *overlays.Node) string {
	return net.JoinHostPort(n.Eth0Address().Addr().String(), fmt.Sprint(n.Admin.PortOrDefault()))
}

// Run updates the plan's nodes in order, waiting for each to commit, and
// stops at the first node that fails or rolls back. Before the master
// load balancer reboots it hands the VIP over (VRRP priority 0, so the
// backup takes the address without waiting for the master to go
// silent); before a web node reboots every load balancer drains it, and
// gives it traffic again once it has committed or rolled back.
func Run(ctx context.Context, plan []Step, o Options) (Summary, error) {
	var sum Summary
	start := time.Now()
	out := o.out()
	fmt.Fprintf(out, "rollout of %d nodes:", len(plan))
	for _, s := range plan {
		fmt.Fprintf(out, " %s (%s)", s.Node.Hostname, s.Node.Role)
	}
	fmt.Fprintln(out)
	for i, s := range plan {
		stop := func(err error) (Summary, error) {
			sum.Took = time.Since(start)
			return sum, fmt.Errorf("%s: %w; stopping the rollout (%d of %d nodes updated)", s.Node.Hostname, err, i, len(plan))
		}
		fmt.Fprintf(out, "\n[%d/%d] %s: %s %s\n", i+1, len(plan), s.Node.Hostname, s.Image.Role, s.Image.Img.Manifest.Version)
		c, err := o.Client(s.Node)
		if err != nil {
			return stop(err)
		}
		running, err := runningVersion(ctx, c)
		if err != nil {
			return stop(err)
		}
		if running == s.Image.Img.Manifest.Version {
			fmt.Fprintf(out, "  already runs %s\n", running)
			sum.Skipped = append(sum.Skipped, s.Node.Hostname)
			continue
		}
		undrain := o.prepare(ctx, s.Node, c)
		nctx, cancel := context.WithTimeout(ctx, o.Timeout)
		res, err := Push(nctx, c, s.Image.Img, o.Push)
		cancel()
		undrain()
		if err != nil {
			return stop(err)
		}
		sum.Sent += res.Sent
		if err := res.Err(); err != nil {
			return stop(err)
		}
		sum.Updated = append(sum.Updated, s.Node.Hostname)
	}
	sum.Took = time.Since(start)
	fmt.Fprintf(out, "\nrollout done: %d nodes in %.0fs, %.1f MB sent\n", len(plan), sum.Took.Seconds(), float64(sum.Sent)/1e6)
	return sum, nil
}

// runningVersion asks a node which version its running slot holds.
func runningVersion(ctx context.Context, c *Client) (string, error) {
	var st ota.Status
	if err := c.GetJSON(ctx, "/ota", &st); err != nil {
		return "", err
	}
	for _, sl := range st.Slots {
		if sl.Running {
			return sl.Version, nil
		}
	}
	return "", nil
}

// prepare makes a node's reboot invisible to clients: the master hands
// its VIP over, a web node is drained from every load balancer. A step
// that fails is reported and the update goes on: VRRP fails over by
// itself and the balancers' health checks take a stopped web node out,
// at the cost of the requests in flight. It returns what undoes it.
func (o Options) prepare(ctx context.Context, n *overlays.Node, c *Client) (undo func()) {
	undo = func() {}
	out := o.out()
	switch n.Role {
	case overlays.RoleLBMaster:
		msg, err := c.Command(ctx, "vip", "handover", "")
		if err != nil {
			fmt.Fprintf(out, "  warning: VIP handover failed (the backup takes over when the master goes silent): %v\n", err)
			return undo
		}
		fmt.Fprintf(out, "  VIP %s\n", msg)
	case overlays.RoleWeb:
		type drained struct {
			lb      *overlays.Node
			backend string
		}
		var done []drained
		for _, lb := range o.Cluster {
			name := backendOf(lb, n)
			if name == "" {
				continue
			}
			lc, err := o.Client(lb)
			if err == nil {
				var msg string
				if msg, err = lc.Command(ctx, "balancer", "drain", name); err == nil {
					fmt.Fprintf(out, "  %s: %s\n", lb.Hostname, msg)
					done = append(done, drained{lb, name})
					continue
				}
			}
			fmt.Fprintf(out, "  warning: %s could not drain %s (its health checks will take it out): %v\n", lb.Hostname, name, err)
		}
		undo = func() {
			for _, d := range done {
				lc, err := o.Client(d.lb)
				if err == nil {
					var msg string
					if msg, err = lc.Command(context.WithoutCancel(ctx), "balancer", "undrain", d.backend); err == nil {
						fmt.Fprintf(out, "  %s: %s\n", d.lb.Hostname, msg)
						continue
					}
				}
				fmt.Fprintf(out, "  warning: %s could not give %s traffic again: %v\n", d.lb.Hostname, d.backend, err)
			}
		}
	}
	return undo
}

// backendOf returns the name of lb's balancer backend that is web (by
// address), or "".
func backendOf(lb, web *overlays.Node) string {
	if lb.Balancer == nil {
		return ""
	}
	addr := web.Eth0Address().Addr()
	for _, be := range lb.Balancer.Backends {
		ap, err := netip.ParseAddrPort(be.Address)
		host, _, _ := net.SplitHostPort(be.Address)
		if err == nil && ap.Addr() == addr || host == web.Hostname {
			return be.Name
		}
	}
	return ""
}
