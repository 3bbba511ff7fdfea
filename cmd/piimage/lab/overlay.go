package lab

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/piimage/piimage/overlays"
)

// StatsUser is the user of the stats page the lab adds to load balancers.
const StatsUser = "lab"

// labSettings are what the lab changes in every overlay copy.
type labSettings struct {
	// MirrorSecret is the cluster secret file of the web nodes' mirror.
	MirrorSecret string
	// StatsHash is the password hash of the stats page added to load
	// balancers that have none.
	StatsHash string
}

// labOverlay returns the lab's copy of n as overlay YAML: the web root in
// the node's folder, the mirror's secret in the lab's folder and its
// primary's address spelled out (the lab has no DNS), and on load
// balancers a stats page on eth0 for the lab's counters. The copy is
// parsed again, so it is as valid as the original.
func labOverlay(n *overlays.Node, pn PlanNode, p *Plan, s labSettings) ([]byte, error) {
	c, err := copyNode(n)
	if err != nil {
		return nil, err
	}
	if c.Role == overlays.RoleWeb {
		if c.Web == nil {
			c.Web = &overlays.Web{}
		}
		c.Web.Root = pn.WWW
		if m := c.Mirror; m != nil {
			m.SecretFile = s.MirrorSecret
			if !m.PrimaryAddress.IsValid() {
				if prim, ok := p.Node(m.Primary); ok {
					m.PrimaryAddress = prim.Addr.Addr()
				}
			}
		}
	}
	if c.IsLB() && c.Balancer != nil && c.Balancer.Stats == nil {
		c.Balancer.Stats = &overlays.Stats{Port: statsPort, Bind: pn.Addr.Addr(), User: StatsUser, PasswordHash: s.StatsHash}
	}
	out, err := overlays.Marshal(c)
	if err != nil {
		return nil, err
	}
	if _, err := overlays.Parse(pn.Overlay, out); err != nil {
		return nil, fmt.Errorf("the lab's copy of %s's overlay: %w", n.Hostname, err)
	}
	return out, nil
}

// copyNode returns a deep copy of n, through its YAML.
func copyNode(n *overlays.Node) (*overlays.Node, error) {
	b, err := overlays.Marshal(n)
	if err != nil {
		return nil, err
	}
	c, err := overlays.Parse(n.File, b)
	if err != nil {
		return nil, fmt.Errorf("copying %s's overlay: %w", n.Hostname, err)
	}
	return c, nil
}

// setDrain rewrites the overlay file at path with backend's drain flag
// set to drain, and reports whether the file had that backend.
func setDrain(path, backend string, drain bool) (bool, error) {
	n, err := overlays.Load(path)
	if err != nil {
		return false, err
	}
	if n.Balancer == nil {
		return false, nil
	}
	found := false
	for i := range n.Balancer.Backends {
		if n.Balancer.Backends[i].Name == backend {
			n.Balancer.Backends[i].Drain = drain
			found = true
		}
	}
	if !found {
		return false, nil
	}
	b, err := overlays.Marshal(n)
	if err != nil {
		return false, err
	}
	return true, writeAtomic(path, b, 0o644)
}

// writeAtomic replaces path's content: a reader sees the old or the new
// file, never half of one.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := firstErr(werr, cerr, os.Chmod(tmp.Name(), perm)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// webIndex is the page each web node's root starts with.
func webIndex(host string) []byte {
	return fmt.Appendf(nil, "<!doctype html>\n<title>piimage lab</title>\n<h1>piimage lab</h1>\n<p>Served from the web root of %s.</p>\n", host)
}
