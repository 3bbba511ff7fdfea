package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services"
)

// Balancer is the running load balancer. It implements services.Service.
type Balancer struct {
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex // serializes Reload, view rebuilds and checker changes
	cfg      atomic.Pointer[Config]
	pool     atomic.Pointer[pool]
	auth     atomic.Pointer[authenticator]
	certs    atomic.Pointer[certSet]
	checkers map[*backend]context.CancelFunc
	runCtx   context.Context // set by Run; checkers live under it
	// abandoners are the frontends that abandon a backend's exchanges
	// when it is marked down (markdown.go); set by Run.
	abandoners []abandoner

	started atomic.Bool
	running atomic.Bool
	ready   chan struct{} // closed once every listener is open
	addrs   struct {
		sync.Mutex
		main, tls, stats net.Addr
	}

	fe frontendStats
}

// frontendStats are the client-side counters.
type frontendStats struct {
	connsNow    atomic.Int64
	connsTotal  atomic.Uint64
	requests    atomic.Uint64
	badRequests atomic.Uint64 // refused before forwarding (400, 413, 431)
	noBackend   atomic.Uint64 // 503: nothing to send to
	badGateway  atomic.Uint64 // 502: every try failed
	timeouts    atomic.Uint64 // 504
	retries     atomic.Uint64 // requests that moved to another backend
}

// New builds the balancer of node's balancer section. It opens no sockets:
// Run does.
func New(node *overlays.Node, log *slog.Logger) (services.Service, error) {
	if node == nil || node.Balancer == nil {
		return nil, errors.New("building balancer: the node has no balancer section")
	}
	return NewFromConfig(ConfigFromOverlay(node.Balancer), log)
}

var _ services.Factory = New

// NewFromConfig builds a balancer from cfg. It opens no sockets.
func NewFromConfig(cfg Config, log *slog.Logger) (*Balancer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("building balancer: %w", err)
	}
	b := &Balancer{log: log, now: time.Now, ready: make(chan struct{}), checkers: map[*backend]context.CancelFunc{}}
	if err := b.apply(&c, nil); err != nil {
		return nil, fmt.Errorf("building balancer: %w", err)
	}
	return b, nil
}

// apply installs cfg: backends that stay keep their object, new ones are
// created, removed ones drain. It refuses a cfg it cannot apply and then
// leaves everything as it was.
func (b *Balancer) apply(cfg *Config, old *pool) error {
	var auth *authenticator
	if cfg.Stats != nil {
		a, err := newAuthenticator(cfg.Stats.User, cfg.Stats.PasswordHash)
		if err != nil {
			return fmt.Errorf("stats password hash: %w", err)
		}
		auth = a
	}
	var certs *certSet
	if cfg.TLS != nil {
		cs, err := loadCerts(cfg.TLS.Certs)
		if err != nil {
			return err
		}
		certs = cs
	}
	now := b.now()
	keep := map[string]*backend{}
	if old != nil {
		for _, be := range old.backends {
			keep[be.name+"\x00"+be.addr] = be
		}
	}
	var list []*backend
	for _, bc := range cfg.Backends {
		be, ok := keep[bc.Name+"\x00"+bc.Address]
		if ok {
			delete(keep, bc.Name+"\x00"+bc.Address)
			be.apply(bc)
		} else {
			be = newBackend(bc, now)
		}
		if old := be.transport.Swap(b.newTransport(cfg, be)); old != nil {
			old.CloseIdleConnections() // requests in flight on it finish
		}
		list = append(list, be)
	}
	p := newPool(cfg, list)
	b.cfg.Store(cfg)
	b.pool.Store(p)
	b.auth.Store(auth)
	b.certs.Store(certs)
	for _, gone := range keep {
		b.retire(gone)
	}
	if b.runCtx != nil {
		b.restartCheckers()
	}
	return nil
}

// retire stops new traffic to a removed backend; requests in flight finish,
// then its idle connections are closed.
func (b *Balancer) retire(be *backend) {
	be.removed.Store(true)
	be.refresh()
	if cancel, ok := b.checkers[be]; ok {
		cancel()
		delete(b.checkers, be)
	}
	if be.inflight.Load() == 0 {
		be.closeIdle()
	}
	b.log.Info("backend removed; draining", "backend", be.name, "inflight", be.inflight.Load())
}

// Reload applies a changed overlay: backends, weights, algorithm, checks,
// persistence, timeouts, size limits, stats password and certificates
// change in place without dropping requests. Changing a listening port,
// the mode, turning TLS or stats on or off, or the connection limit needs
// a restart and is refused.
func (b *Balancer) Reload(node *overlays.Node) error {
	if node == nil || node.Balancer == nil {
		return errors.New("reloading balancer: the node has no balancer section")
	}
	return b.ReloadConfig(ConfigFromOverlay(node.Balancer))
}

// ReloadConfig is Reload for a Config; an empty Addr keeps the current one.
func (b *Balancer) ReloadConfig(cfg Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.cfg.Load()
	if cfg.Addr == "" {
		cfg.Addr = cur.Addr
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return fmt.Errorf("reloading balancer: %w", err)
	}
	if ch := cur.frontendChanges(c); len(ch) > 0 {
		return fmt.Errorf("reloading balancer: changing %v needs a restart", ch)
	}
	if err := b.apply(&c, b.pool.Load()); err != nil {
		return fmt.Errorf("reloading balancer: %w", err)
	}
	b.log.Info("balancer reloaded", "backends", len(c.Backends), "algorithm", c.Algorithm)
	return nil
}

// Health reports nil while the balancer is serving and at least one
// backend can take traffic. The VIP tracks it: a balancer with nothing to
// send to should not hold the floating address.
func (b *Balancer) Health() error {
	if !b.running.Load() {
		return errors.New("balancer is not running")
	}
	p := b.pool.Load()
	if p.usable() == 0 {
		return fmt.Errorf("balancer: none of %d backends is up", len(p.backends))
	}
	return nil
}

// Run opens the listeners, runs the health checks and serves until ctx is
// done, then stops accepting, lets requests in flight finish (at most
// Grace) and returns nil.
func (b *Balancer) Run(ctx context.Context) error {
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("balancer: Run called twice")
	}
	cfg := b.cfg.Load()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var fronts []frontend
	closeAll := func() {
		for _, f := range fronts {
			f.close()
		}
	}
	add := func(f frontend, err error) error {
		if err != nil {
			closeAll()
			return err
		}
		fronts = append(fronts, f)
		return nil
	}
	var err error
	if cfg.Mode == ModeTCP {
		err = add(b.listenTCP(cfg))
	} else {
		err = add(b.listenHTTP(cfg))
		if err == nil && cfg.TLS != nil {
			err = add(b.listenTLS(cfg))
		}
	}
	if err == nil && cfg.Stats != nil {
		err = add(b.listenStats(cfg))
	}
	if err != nil {
		return fmt.Errorf("starting balancer: %w", err)
	}
	b.mu.Lock()
	b.runCtx = ctx
	for _, f := range fronts {
		if a, ok := f.(abandoner); ok {
			b.abandoners = append(b.abandoners, a)
		}
	}
	b.restartCheckers()
	b.mu.Unlock()
	b.running.Store(true)
	close(b.ready)
	b.log.Info("balancer running", "addr", b.Addr(), "mode", cfg.Mode, "backends", len(cfg.Backends))

	go b.sweepIdle(ctx)
	errc := make(chan error, len(fronts))
	for _, f := range fronts {
		go func() { errc <- f.serve() }()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		if runErr == nil {
			runErr = errors.New("a listener closed")
		}
		runErr = fmt.Errorf("serving: %w", runErr)
	}
	b.running.Store(false)
	grace := b.cfg.Load().Grace
	sctx, scancel := context.WithTimeout(context.Background(), grace)
	defer scancel()
	var wg sync.WaitGroup
	for _, f := range fronts {
		wg.Add(1)
		go func() { defer wg.Done(); f.shutdown(sctx) }()
	}
	wg.Wait()
	cancel()
	b.mu.Lock()
	for be, c := range b.checkers {
		c()
		delete(b.checkers, be)
	}
	b.mu.Unlock()
	for _, be := range b.pool.Load().backends {
		be.closeIdle()
	}
	return runErr
}

// sweepIdle closes backend connections that stayed idle too long.
func (b *Balancer) sweepIdle(ctx context.Context) {
	t := time.NewTicker(backendIdleTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, be := range b.pool.Load().backends {
				be.idle.sweep(now)
			}
		}
	}
}

// frontend is one listening socket and its server.
type frontend interface {
	serve() error                 // blocks until closed
	shutdown(ctx context.Context) // stop accepting, wait for work in flight
	close()                       // close at once (startup failures)
}

// Addr returns the main listener's address once Run has opened it, or nil.
func (b *Balancer) Addr() net.Addr {
	b.addrs.Lock()
	defer b.addrs.Unlock()
	return b.addrs.main
}

// TLSAddr returns the TLS listener's address once Run has opened it.
func (b *Balancer) TLSAddr() net.Addr {
	b.addrs.Lock()
	defer b.addrs.Unlock()
	return b.addrs.tls
}

// StatsAddr returns the stats listener's address once Run has opened it.
func (b *Balancer) StatsAddr() net.Addr {
	b.addrs.Lock()
	defer b.addrs.Unlock()
	return b.addrs.stats
}

// Ready is closed once Run has opened every listener.
func (b *Balancer) Ready() <-chan struct{} { return b.ready }

// rebuild recomputes the current pool's view after a backend changed.
func (b *Balancer) rebuild() {
	b.mu.Lock()
	b.pool.Load().rebuild()
	b.mu.Unlock()
}

// healthChanged records a backend's state change and rebuilds the view.
// A backend marked down also loses its idle connections and the exchanges
// that have no answer yet (markdown.go).
func (b *Balancer) healthChanged(be *backend) {
	be.refresh()
	b.rebuild()
	be.mu.Lock()
	h := be.health
	be.mu.Unlock()
	if h.Up {
		b.log.Info("backend up", "backend", be.name, "addr", be.addr, "reason", h.Reason)
	} else {
		// Its idle connections are likely dead too: do not reuse them
		// when it comes back.
		be.closeIdle()
		b.log.Warn("backend down", "backend", be.name, "addr", be.addr, "reason", h.Reason)
		b.abandonExchanges(be)
	}
}

// observeCheck feeds an active check's result into be's health.
func (b *Balancer) observeCheck(be *backend, ok bool, msg string, dur time.Duration) {
	cfg := b.cfg.Load()
	be.mu.Lock()
	changed := be.health.checkResult(b.now(), ok, msg, dur, cfg.Check.Fall, cfg.Check.Rise)
	be.mu.Unlock()
	if changed {
		b.healthChanged(be)
	}
}

// observeTraffic feeds a proxied request's outcome into be's health
// (passive detection). Only checked backends are taken down this way:
// their checks bring them back.
func (b *Balancer) observeTraffic(be *backend, ok bool, msg string) {
	if ok && be.errStreak.Load() == 0 {
		return
	}
	cfg := b.cfg.Load()
	limit := cfg.ErrorLimit
	if be.noCheck.Load() || cfg.Check.Type == "none" {
		limit = 0
	}
	be.mu.Lock()
	changed := be.health.trafficResult(b.now(), ok, msg, limit)
	be.errStreak.Store(int32(be.health.Errs))
	be.mu.Unlock()
	if changed {
		b.healthChanged(be)
	}
}
