package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"sort"
	"time"

	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/image/ota/otaimage"
	"github.com/piimage/piimage/overlays"
)

func rolloutCommand() command {
	return command{
		name:  "rollout",
		short: "update a cluster one node at a time, stopping at the first failure (CLUSTER IMAGE...)",
		run:   runRollout,
	}
}

type rolloutFlags struct {
	keys    string
	src     string
	full    bool
	timeout time.Duration
}

func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f rolloutFlags
	fset := newFlagSet("rollout", "rollout [flags] CLUSTER IMAGE...", stderr)
	fset.StringVar(&f.keys, "keys", "", "the cluster's keys folder (default: .keys in the source tree)")
	fset.StringVar(&f.src, "src", "", "piimage source tree (default: found from the current folder)")
	fset.BoolVar(&f.full, "full", false, "send every byte, even those a node already has")
	fset.DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up on a node after this long")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return &usageError{"rollout: give the cluster folder and at least one image (one per role)"}
	}
	nodes, err := overlays.LoadDir(pos[0])
	if err != nil {
		return err
	}
	dir, err := keysDir(f.keys, f.src)
	if err != nil {
		return err
	}
	var imgs []*rolloutImage
	for _, p := range pos[1:] {
		ri, err := openRolloutImage(p)
		if err != nil {
			return err
		}
		defer ri.file.Close()
		imgs = append(imgs, ri)
	}
	plan, err := planRollout(nodes, imgs)
	if err != nil {
		return err
	}
	return rollout(ctx, stdout, stderr, plan, rolloutOptions{
		client:  func(n *overlays.Node) (*adminClient, error) { return newAdminClient(adminAddr(n), dir) },
		update:  updateOptions{full: f.full, out: stdout, progress: progressWriter(stderr)},
		timeout: f.timeout,
	})
}

// adminAddr is a node's admin API address: its eth0 address (never the
// VIP) and its admin port.
func adminAddr(n *overlays.Node) string {
	return net.JoinHostPort(n.Eth0Address().Addr().String(), fmt.Sprint(n.Admin.PortOrDefault()))
}

// rolloutImage is an image with the role it was built for.
type rolloutImage struct {
	path string
	file *os.File
	img  *otaimage.Image
	role string
}

func openRolloutImage(p string) (*rolloutImage, error) {
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
	return &rolloutImage{path: p, file: f, img: img, role: rel.Role}, nil
}

// rolloutStep is one node to update with one image.
type rolloutStep struct {
	node *overlays.Node
	img  *rolloutImage
}

// planRollout orders the nodes that have an image for their role: the
// backup balancer first, then the master (whose VIP the backup holds
// while it reboots), then the web nodes one by one, by hostname.
func planRollout(nodes []*overlays.Node, imgs []*rolloutImage) ([]rolloutStep, error) {
	byRole := map[string]*rolloutImage{}
	for _, ri := range imgs {
		if prev, ok := byRole[ri.role]; ok {
			return nil, fmt.Errorf("two images for role %s: %s and %s", ri.role, prev.path, ri.path)
		}
		byRole[ri.role] = ri
	}
	rank := map[string]int{overlays.RoleLBBackup: 0, overlays.RoleLBMaster: 1, overlays.RoleWeb: 2}
	var plan []rolloutStep
	for _, n := range nodes {
		ri, ok := byRole[n.Role]
		if !ok {
			continue
		}
		if b := n.BoardOrDefault(); b != ri.img.Manifest.Board {
			return nil, fmt.Errorf("%s is a %s; %s is for %s", n.Hostname, b, ri.path, ri.img.Manifest.Board)
		}
		plan = append(plan, rolloutStep{node: n, img: ri})
	}
	sort.SliceStable(plan, func(i, j int) bool {
		a, b := plan[i].node, plan[j].node
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
			found = found || s.img == ri
		}
		if !found {
			return nil, fmt.Errorf("%s is for role %s, which no node of the cluster has", ri.path, role)
		}
	}
	return plan, nil
}

type rolloutOptions struct {
	client  func(*overlays.Node) (*adminClient, error)
	update  updateOptions
	timeout time.Duration
}

// rollout updates the plan's nodes in order, waiting for each to commit,
// and stops at the first node that fails or rolls back.
func rollout(ctx context.Context, stdout, stderr io.Writer, plan []rolloutStep, o rolloutOptions) error {
	start := time.Now()
	fmt.Fprintf(stdout, "rollout of %d nodes:", len(plan))
	for _, s := range plan {
		fmt.Fprintf(stdout, " %s (%s)", s.node.Hostname, s.node.Role)
	}
	fmt.Fprintln(stdout)
	var sent int64
	for i, s := range plan {
		fmt.Fprintf(stdout, "\n[%d/%d] %s: %s %s\n", i+1, len(plan), s.node.Hostname, s.img.role, s.img.img.Manifest.Version)
		if s.node.Role == overlays.RoleLBMaster {
			// TODO(vip handover): ask the master to hand the VIP over
			// ((*vip.Service).Handover) before its reboot; until the
			// admin API has that route, VRRP fails over when the master
			// stops advertising, and takes the VIP back when it returns.
			fmt.Fprintln(stdout, "  the backup takes the VIP over while the master reboots (VRRP failover)")
		}
		c, err := o.client(s.node)
		if err != nil {
			return err
		}
		var st struct {
			Slots []struct {
				Version string `json:"version"`
				Running bool   `json:"running"`
			} `json:"slots"`
		}
		if err := c.getJSON(ctx, "/ota", &st); err != nil {
			return fmt.Errorf("%s: %w; stopping the rollout (%d of %d nodes updated)", s.node.Hostname, err, i, len(plan))
		}
		running := ""
		for _, sl := range st.Slots {
			if sl.Running {
				running = sl.Version
			}
		}
		if running == s.img.img.Manifest.Version {
			fmt.Fprintf(stdout, "  already runs %s\n", running)
			continue
		}
		nctx, cancel := context.WithTimeout(ctx, o.timeout)
		out, err := pushUpdate(nctx, c, s.img.img, o.update)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w; stopping the rollout (%d of %d nodes updated)", s.node.Hostname, err, i, len(plan))
		}
		sent += out.Sent
		if err := out.err(); err != nil {
			return fmt.Errorf("%s: %w; stopping the rollout (%d of %d nodes updated)", s.node.Hostname, err, i, len(plan))
		}
	}
	fmt.Fprintf(stdout, "\nrollout done: %d nodes in %.0fs, %.1f MB sent\n", len(plan), time.Since(start).Seconds(), float64(sent)/1e6)
	return nil
}
