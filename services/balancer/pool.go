package balancer

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
)

// pool is one configuration's set of backends and its algorithm. Health
// changes rebuild its view, the list of backends selection may use right
// now; a reload builds a new pool that reuses the backends that stayed.
type pool struct {
	cfg      *Config
	backends []*backend
	byName   map[string]*backend
	rr       atomic.Uint64
	view     atomic.Pointer[view]
}

// view is the immutable set of backends to choose from: the usable
// primaries, or the usable backups when no primary is usable.
type view struct {
	active  []*backend
	seq     []*backend // smooth weighted round-robin order over active
	backup  bool       // active are backups
	backups []*backend // usable backups, for a retry when no primary is left
}

func newPool(cfg *Config, backends []*backend) *pool {
	p := &pool{cfg: cfg, backends: backends, byName: make(map[string]*backend, len(backends))}
	for _, b := range backends {
		p.byName[b.name] = b
	}
	p.rebuild()
	return p
}

// rebuild recomputes the view from the backends' current state.
func (p *pool) rebuild() {
	var prim, back []*backend
	for _, b := range p.backends {
		if !b.usable.Load() {
			continue
		}
		if b.backup.Load() {
			back = append(back, b)
		} else {
			prim = append(prim, b)
		}
	}
	v := &view{active: prim, backups: back}
	if len(prim) == 0 {
		v.active, v.backup = back, true
	}
	v.seq = smoothWeighted(v.active)
	p.view.Store(v)
}

// smoothWeighted returns the backends in nginx's smooth weighted
// round-robin order: each appears weight times per cycle, spread out
// rather than in runs.
func smoothWeighted(bs []*backend) []*backend {
	if len(bs) == 0 {
		return nil
	}
	total := 0
	w := make([]int, len(bs))
	cur := make([]int, len(bs))
	for i, b := range bs {
		w[i] = int(b.weight.Load())
		if w[i] <= 0 {
			w[i] = 1
		}
		total += w[i]
	}
	seq := make([]*backend, 0, total)
	for range total {
		best := 0
		for i := range bs {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		seq = append(seq, bs[best])
	}
	return seq
}

// errNoBackend means no backend is usable.
var errNoBackend = errors.New("no backend is available")

// pick chooses a backend for a request whose hash key is key (hasKey false
// means the algorithm has nothing to hash and falls back to round-robin),
// skipping exclude (a backend that just failed to connect). It prefers a
// backend with a free slot below MaxConn unless the algorithm is a hash.
func (p *pool) pick(key uint64, hasKey bool, exclude *backend) *backend {
	v := p.view.Load()
	if len(v.active) == 0 {
		return nil
	}
	if len(v.active) == 1 && v.active[0] == exclude {
		// The only primary just failed to connect: a retry may use a
		// backup before the checks have taken the primary down.
		if v.backup || len(v.backups) == 0 {
			return nil
		}
		return v.backups[p.rr.Add(1)%uint64(len(v.backups))]
	}
	switch {
	case p.cfg.Algorithm == "leastconn":
		return p.leastConn(v, exclude)
	case hasKey && p.cfg.Algorithm != "roundrobin":
		return rendezvous(v.active, key, exclude)
	}
	n := uint64(len(v.seq))
	start := p.rr.Add(1)
	var fallback *backend
	for i := range n {
		b := v.seq[(start+i)%n]
		if b == exclude {
			continue
		}
		if !b.full() {
			return b
		}
		if fallback == nil {
			fallback = b
		}
	}
	return fallback
}

// leastConn returns the backend with the fewest requests in flight
// relative to its weight; ties go round-robin.
func (p *pool) leastConn(v *view, exclude *backend) *backend {
	n := uint64(len(v.active))
	start := p.rr.Add(1)
	var best *backend
	var bestLoad, bestW int64
	for i := range n {
		b := v.active[(start+i)%n]
		if b == exclude {
			continue
		}
		load, w := b.inflight.Load(), int64(b.weight.Load())
		// load/w < bestLoad/bestW without division.
		if best == nil || load*bestW < bestLoad*w {
			best, bestLoad, bestW = b, load, w
		}
	}
	return best
}

// rendezvous returns the backend with the highest weighted rendezvous
// (highest random weight) score for key. Removing a backend moves only the
// keys it had; adding one takes only its own share from the others.
func rendezvous(bs []*backend, key uint64, exclude *backend) *backend {
	var best *backend
	bestScore := math.Inf(-1)
	for _, b := range bs {
		if b == exclude {
			continue
		}
		h := mix64(key ^ hashString(b.name))
		// u is uniform in (0,1); -w/ln(u) is the weighted score.
		u := (float64(h>>11) + 0.5) / (1 << 53)
		score := -float64(b.weight.Load()) / math.Log(u)
		if score > bestScore {
			best, bestScore = b, score
		}
	}
	return best
}

// hashString is 64-bit FNV-1a: stable across processes and nodes, so both
// load balancers send a key to the same backend.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func hashBytes(s []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range s {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// mix64 is SplitMix64's finalizer, spreading FNV's weak low bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// acquire picks a backend and takes a slot on it, waiting in its queue
// when it is at MaxConn.
func (p *pool) acquire(ctx context.Context, key uint64, hasKey bool, exclude *backend) (*backend, error) {
	b := p.pick(key, hasKey, exclude)
	if b == nil {
		return nil, errNoBackend
	}
	if err := b.acquire(ctx, p.cfg.QueueTimeout); err != nil {
		return nil, err
	}
	b.requests.Add(1)
	return b, nil
}

// usable reports how many backends could take traffic now.
func (p *pool) usable() int {
	return len(p.view.Load().active)
}
