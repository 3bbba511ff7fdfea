package balancer

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// backend is one server and everything the balancer knows about it. A
// backend that survives a reload (same name and address) is the same
// object, so its health, counters and idle connections carry over.
type backend struct {
	name string
	addr string

	weight  atomic.Int32
	maxConn atomic.Int32
	backup  atomic.Bool
	drain   atomic.Bool
	noCheck atomic.Bool
	removed atomic.Bool // no longer in the configuration; finishing in-flight work

	usable atomic.Bool // up and not draining: what selection reads
	down   atomic.Bool // marked down by its checks or its traffic (health.Up's mirror)

	mu     sync.Mutex
	health HealthState
	queue  []chan struct{} // requests waiting for a slot below maxConn

	inflight  atomic.Int64                   // requests (http) or connections (tcp) now
	errStreak atomic.Int32                   // mirror of health.Errs for the fast path
	transport atomic.Pointer[http.Transport] // for the TLS frontend's ReverseProxy
	idle      idlePool                       // for the HTTP/1 engine

	requests   atomic.Uint64 // sent to this backend
	connErrors atomic.Uint64 // could not connect
	respErrors atomic.Uint64 // failed after connecting (reset, timeout, garbage)
	retries    atomic.Uint64 // requests moved away from it after a connect error
	redispatch atomic.Uint64 // requests taken off it when it was marked down and sent to another backend
	http5xx    atomic.Uint64
	queued     atomic.Uint64 // requests that had to wait for a slot
	queueFull  atomic.Uint64 // requests that waited too long
	latency    histogram     // time to response headers (http) or to connect (tcp)
	bytesIn    atomic.Uint64 // from the backend (tcp mode)
	bytesOut   atomic.Uint64 // to the backend (tcp mode)
}

func newBackend(bc BackendConfig, now time.Time) *backend {
	b := &backend{name: bc.Name, addr: bc.Address, health: newHealthState(now)}
	b.apply(bc)
	return b
}

// apply sets the settings a reload may change in place.
func (b *backend) apply(bc BackendConfig) {
	b.weight.Store(int32(bc.Weight))
	b.maxConn.Store(int32(bc.MaxConn))
	b.backup.Store(bc.Backup)
	b.drain.Store(bc.Drain)
	b.noCheck.Store(bc.NoCheck)
	b.mu.Lock()
	if bc.NoCheck && !b.health.Up {
		b.health.Up, b.health.Reason = true, "checks turned off"
	}
	b.mu.Unlock()
	b.refresh()
}

// refresh recomputes usable from health and drain.
func (b *backend) refresh() {
	b.mu.Lock()
	up := b.health.Up
	b.down.Store(!up)
	b.mu.Unlock()
	b.usable.Store(up && !b.drain.Load() && !b.removed.Load())
}

// full reports whether b has no free slot below its MaxConn.
func (b *backend) full() bool {
	m := b.maxConn.Load()
	return m > 0 && b.inflight.Load() >= int64(m)
}

// errQueueTimeout means a request waited longer than the queue timeout.
var errQueueTimeout = errors.New("waited too long for a free backend slot")

// acquire takes a slot on b, waiting in b's queue while b is at MaxConn
// until wait passes or ctx is done.
func (b *backend) acquire(ctx context.Context, wait time.Duration) error {
	m := int64(b.maxConn.Load())
	if m <= 0 {
		b.inflight.Add(1)
		return nil
	}
	b.mu.Lock()
	if b.inflight.Load() < m && len(b.queue) == 0 {
		b.inflight.Add(1)
		b.mu.Unlock()
		return nil
	}
	ch := make(chan struct{}, 1)
	b.queue = append(b.queue, ch)
	b.mu.Unlock()
	b.queued.Add(1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
		return nil // the releaser handed its slot over
	case <-t.C:
	case <-ctx.Done():
	}
	b.mu.Lock()
	for i, q := range b.queue {
		if q == ch {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			b.mu.Unlock()
			b.queueFull.Add(1)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errQueueTimeout
		}
	}
	b.mu.Unlock()
	// Handed a slot just as we gave up: give it back.
	<-ch
	b.release()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errQueueTimeout
}

// release frees a slot, handing it to the first waiter if there is one.
func (b *backend) release() {
	if b.maxConn.Load() > 0 {
		b.mu.Lock()
		if len(b.queue) > 0 && b.inflight.Load() <= int64(b.maxConn.Load()) {
			ch := b.queue[0]
			b.queue = b.queue[1:]
			b.mu.Unlock()
			ch <- struct{}{}
			return
		}
		b.mu.Unlock()
	}
	if b.inflight.Add(-1) == 0 && b.removed.Load() {
		b.closeIdle()
	}
}

// closeIdle closes b's idle keep-alive connections.
func (b *backend) closeIdle() {
	if t := b.transport.Load(); t != nil {
		t.CloseIdleConnections()
	}
	b.idle.sweep(time.Time{})
}

// BackendStats is a consistent copy of a backend's state for the stats
// page, the metrics and the admin API.
type BackendStats struct {
	Name, Addr      string
	State           string
	Up, Usable      bool
	Weight, MaxConn int
	Backup, Drain   bool
	Checked         bool
	Health          HealthState
	Inflight        int64
	Queue           int
	Requests        uint64
	ConnErrors      uint64
	RespErrors      uint64
	Retries         uint64
	Redispatches    uint64 // requests moved to another backend when this one was marked down
	HTTP5xx         uint64
	Queued          uint64
	QueueFull       uint64
	BytesIn         uint64
	BytesOut        uint64
	Latency         LatencySnapshot
}

func (b *backend) snapshot(fall, rise int) BackendStats {
	b.mu.Lock()
	h := b.health
	q := len(b.queue)
	b.mu.Unlock()
	s := BackendStats{
		Name: b.name, Addr: b.addr, Up: h.Up, Usable: b.usable.Load(),
		Weight: int(b.weight.Load()), MaxConn: int(b.maxConn.Load()),
		Backup: b.backup.Load(), Drain: b.drain.Load(), Checked: !b.noCheck.Load(),
		Health: h, Inflight: b.inflight.Load(), Queue: q,
		Requests: b.requests.Load(), ConnErrors: b.connErrors.Load(), RespErrors: b.respErrors.Load(),
		Retries: b.retries.Load(), Redispatches: b.redispatch.Load(), HTTP5xx: b.http5xx.Load(), Queued: b.queued.Load(),
		QueueFull: b.queueFull.Load(), BytesIn: b.bytesIn.Load(), BytesOut: b.bytesOut.Load(),
		Latency: b.latency.snapshot(),
	}
	switch {
	case b.removed.Load():
		s.State = "REMOVED"
	case s.Drain && h.Up:
		s.State = "DRAIN"
	case !s.Checked:
		s.State = "UP (no check)"
	default:
		s.State = h.String(fall, rise)
	}
	return s
}

// histogram counts durations in fixed buckets, lock-free.
type histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
	max    atomic.Int64
}

// latencyBuckets are the upper bounds of the histogram's buckets.
var latencyBuckets = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// LatencySnapshot is a copy of a latency histogram: counts per bucket of
// latencyBuckets (the last one is everything slower), their sum and the
// maximum.
type LatencySnapshot struct {
	Counts [len(latencyBuckets) + 1]uint64
	Sum    time.Duration
	Max    time.Duration
}

func (h *histogram) snapshot() LatencySnapshot {
	var s LatencySnapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum, s.Max = time.Duration(h.sum.Load()), time.Duration(h.max.Load())
	return s
}

func (s LatencySnapshot) count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// quantile returns the upper bound of the bucket holding quantile q.
func (s LatencySnapshot) quantile(q float64) time.Duration {
	n := s.count()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n-1)) + 1
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			if i < len(latencyBuckets) {
				return latencyBuckets[i]
			}
			return s.Max
		}
	}
	return s.Max
}
