package lab

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MirrorProbeFile is the file the lab's dashboard writes into the mirror
// primary's web root, and reads back from the replicas, to measure their
// lag.
const MirrorProbeFile = "piimage-lab-probe.txt"

// mirrorProbe writes the time into the primary's probe file every second
// and remembers when it wrote what, so a replica's copy tells how long the
// oldest change it lacks has been waiting (the mirror's own definition of
// lag).
type mirrorProbe struct {
	path string
	now  func() time.Time

	mu     sync.Mutex
	writes []time.Time // oldest first, the last few minutes
}

// newMirrorProbe returns the probe of the plan's mirror primary, or nil
// when no node mirrors another.
func newMirrorProbe(p *Plan) *mirrorProbe {
	for _, n := range p.Nodes {
		if n.MirrorPrimary == "" || n.MirrorPrimary == n.Host {
			continue
		}
		if prim, ok := p.Node(n.MirrorPrimary); ok && prim.WWW != "" {
			return &mirrorProbe{path: filepath.Join(prim.WWW, MirrorProbeFile), now: time.Now}
		}
	}
	return nil
}

// write stamps the probe file with the time.
func (m *mirrorProbe) write() error {
	t := m.now()
	if err := writeAtomic(m.path, []byte(t.UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes = append(m.writes, t)
	if len(m.writes) > 300 {
		m.writes = m.writes[len(m.writes)-300:]
	}
	return nil
}

// lag returns how long the oldest write newer than the copy stamped seen
// has been waiting; 0 when the copy is the newest.
func (m *mirrorProbe) lag(seen time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.writes {
		if w.After(seen) {
			return m.now().Sub(w)
		}
	}
	return 0
}

// parseProbe reads a probe file's time.
func parseProbe(b []byte) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
}

func (m *mirrorProbe) remove() { os.Remove(m.path) }
