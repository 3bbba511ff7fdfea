package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the web service. Build it with NewServer (or New from a node's
// overlay), then Run it; Reload and ReloadConfig swap its configuration
// while it serves.
type Server struct {
	log   *slog.Logger
	clock clock

	site    atomic.Pointer[site]
	alog    atomic.Pointer[accessLog]
	cert    atomic.Pointer[tls.Certificate]
	rootErr atomic.Pointer[error] // the web root's last check; nil when fine
	nconns  atomic.Int64
	refused atomic.Uint64

	mu       sync.Mutex
	cfg      Config // as given, without defaults
	running  bool
	stopping bool
	ready    chan struct{}
	err      error // why Run failed or the last reload was refused
	certErr  error // the last reload of changed certificate files
	certID   [2]fileID
	plain    *listener
	tlsSrv   *http.Server
	tlsLn    net.Listener
	conns    map[*conn]struct{}
	wg       sync.WaitGroup
}

// listener is one plain HTTP listener and its accept loop.
type listener struct {
	ln     net.Listener
	closed atomic.Bool
}

func (l *listener) close() {
	l.closed.Store(true)
	l.ln.Close()
}

// NewServer checks cfg and returns a server that has not started; it opens
// no socket and no file. A nil log discards log records.
func NewServer(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{log: log, cfg: cfg, ready: make(chan struct{})}, nil
}

// Ready is closed once Run listens.
func (s *Server) Ready() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// Addr returns the plain HTTP listener's address, or nil when not running.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plain == nil {
		return nil
	}
	return s.plain.ln.Addr()
}

// TLSAddr returns the HTTPS listener's address, or nil when there is none.
func (s *Server) TLSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// Stats are counters of a running server.
type Stats struct {
	Conns            int64  // open plain HTTP connections
	ConnsRefused     uint64 // connections closed at once because of MaxConns
	AccessLogDropped uint64 // access log lines dropped because the log lagged
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{Conns: s.nconns.Load(), ConnsRefused: s.refused.Load()}
	if l := s.alog.Load(); l != nil {
		st.AccessLogDropped = l.dropped.Load()
	}
	return st
}

// Health reports nil while the server serves its web root. It returns why
// Run failed, why the last reload was refused, that the web root has gone,
// or that a changed certificate could not be loaded.
func (s *Server) Health() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if !s.running {
		return errors.New("web: not running")
	}
	if p := s.rootErr.Load(); p != nil {
		return *p
	}
	return s.certErr
}

// rootHealthy is what HealthPath reports: only whether the web root is
// there, since that is what the balancer needs to know.
func (s *Server) rootHealthy() error {
	if p := s.rootErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Run serves until ctx is done, then stops gracefully: it stops listening,
// closes idle connections, lets requests in flight finish for up to
// GracePeriod and returns nil. A missing web root, a port in use or an
// unreadable certificate make it return an error at once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("web: already running")
	}
	cfg := s.cfg.withDefaults()
	if err := s.start(ctx, &cfg); err != nil {
		s.err = err
		s.mu.Unlock()
		return err
	}
	s.err = nil
	s.running = true
	close(s.ready)
	s.mu.Unlock()
	s.log.Info("web server listening", "addr", s.Addr().String(), "root", cfg.Root, "tls", cfg.tlsOn())

	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case <-t.C:
			s.check()
		}
	}
}

// start opens everything cfg needs and, when all of it opened, starts
// serving. It runs with s.mu held.
func (s *Server) start(ctx context.Context, cfg *Config) (err error) {
	st, err := s.newSite(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			st.tree.close()
		}
	}()
	var cert *tls.Certificate
	var certID [2]fileID
	if cfg.tlsOn() {
		if cert, certID, err = loadCert(cfg); err != nil {
			return err
		}
	}
	alog, err := newAccessLog(cfg, s.log)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	pl, err := s.listen(ctx, cfg, cfg.Listen)
	if err != nil {
		closeLog(alog)
		return err
	}
	var tlsLn net.Listener
	if cfg.tlsOn() {
		if tlsLn, err = s.listenTLS(ctx, cfg); err != nil {
			pl.close()
			closeLog(alog)
			return err
		}
	}
	s.conns = map[*conn]struct{}{}
	s.site.Store(st)
	s.alog.Store(alog)
	s.rootErr.Store(nil)
	s.certErr = nil
	if cert != nil {
		s.cert.Store(cert)
		s.certID = certID
	}
	s.plain = pl
	go s.acceptLoop(pl)
	if tlsLn != nil {
		s.serveTLS(cfg, tlsLn)
	}
	return nil
}

// newSite opens the web root of cfg and builds its serving state.
func (s *Server) newSite(cfg *Config) (*site, error) {
	t, err := openTree(cfg.Root, cfg.SymlinksOutsideRoot)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	host := cfg.Hostname
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			host = "unknown"
		}
	}
	return newSite(*cfg, t, host, s.rootHealthy), nil
}

func closeLog(l *accessLog) {
	if l != nil {
		l.close()
	}
}

func (s *Server) listen(ctx context.Context, cfg *Config, addr string) (*listener, error) {
	var ln net.Listener
	var err error
	if cfg.ListenFunc != nil {
		ln, err = cfg.ListenFunc(ctx, "tcp", addr)
	} else {
		var lc net.ListenConfig
		ln, err = lc.Listen(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("web: listening on %s: %w", addr, err)
	}
	return &listener{ln: ln}, nil
}

// loadCert reads the certificate and key files of cfg.
// loadCert reads the certificate and key files of cfg and returns them
// with the files' identities.
func loadCert(cfg *Config) (*tls.Certificate, [2]fileID, error) {
	ids := certFilesID(cfg)
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, ids, fmt.Errorf("web: loading TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	return &cert, ids, nil
}

func certFilesID(cfg *Config) [2]fileID {
	var ids [2]fileID
	for i, name := range []string{cfg.TLSCert, cfg.TLSKey} {
		if fi, err := os.Stat(name); err == nil {
			ids[i] = idOf(fi)
		}
	}
	return ids
}

// acceptLoop accepts connections on l until it is closed.
func (s *Server) acceptLoop(l *listener) {
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				// Out of file descriptors, or the like: wait, as
				// net/http does, instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accepting a connection", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			s.log.Error("accepting connections failed", "err", err)
			return
		}
		backoff = 0
		st := s.site.Load()
		if s.nconns.Load() >= int64(st.cfg.MaxConns) {
			s.refused.Add(1)
			nc.Close()
			continue
		}
		c := newConn(s, nc, l)
		if !s.track(c) {
			nc.Close()
			continue
		}
		go c.serve()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping || s.conns == nil || c.ln.closed.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.nconns.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.nconns.Add(-1)
	s.wg.Done()
}

// retireConns makes the connections of l (all when l is nil) close after
// their current answer, and idle ones at once. It runs with s.mu held.
func (s *Server) retireConns(l *listener) {
	for c := range s.conns {
		if l != nil && c.ln != l {
			continue
		}
		c.retire.Store(true)
		if c.idle.Load() {
			c.nc.SetReadDeadline(time.Unix(1, 0))
		}
	}
}

// serveTLS starts HTTPS with HTTP/2 on ln. It runs with s.mu held.
func (s *Server) serveTLS(cfg *Config, ln net.Listener) {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	srv := &http.Server{
		Handler: s,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.cert.Load(), nil
			},
		},
		Protocols:         &protos,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.tlsSrv, s.tlsLn = srv, ln
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serving HTTPS failed", "err", err)
		}
	}()
}

func (s *Server) listenTLS(ctx context.Context, cfg *Config) (net.Listener, error) {
	l, err := s.listen(ctx, cfg, cfg.TLSListen)
	if err != nil {
		return nil, err
	}
	return l.ln, nil
}

// shutdown stops serving: see Run.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.stopping = true
	grace := s.site.Load().cfg.GracePeriod
	if s.plain != nil {
		s.plain.close()
	}
	tlsSrv := s.tlsSrv
	s.retireConns(nil)
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	tlsDone := make(chan struct{})
	go func() {
		defer close(tlsDone)
		if tlsSrv != nil && tlsSrv.Shutdown(ctx) != nil {
			tlsSrv.Close()
		}
	}()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		s.log.Warn("closed connections still busy after the grace period", "conns", n, "grace", grace)
		<-done
	}
	<-tlsDone
	closeLog(s.alog.Swap(nil))

	s.mu.Lock()
	s.running, s.stopping = false, false
	s.plain, s.tlsSrv, s.tlsLn, s.conns = nil, nil, nil, nil
	s.ready = make(chan struct{})
	s.mu.Unlock()
	s.log.Info("web server stopped")
}

// check runs every second: it notices a web root that has gone (Health
// and HealthPath then fail) or been replaced by a new folder (served from
// then on), and certificate files that changed (loaded again).
func (s *Server) check() {
	st := s.site.Load()
	cfg := &st.cfg
	fi, err := os.Stat(cfg.Root)
	switch {
	case err != nil:
		s.setRootErr(fmt.Errorf("web: web root: %w", err))
	case !fi.IsDir():
		s.setRootErr(fmt.Errorf("web: web root %s is not a directory", cfg.Root))
	default:
		s.setRootErr(nil)
		if id := idOf(fi); id.dev != st.tree.id.dev || id.ino != st.tree.id.ino {
			s.mu.Lock()
			if s.site.Load() == st {
				if nst, err := s.newSite(cfg); err == nil {
					s.site.Store(nst)
					s.log.Info("web root was replaced; serving the new folder", "root", cfg.Root)
				}
			}
			s.mu.Unlock()
		}
	}
	if !cfg.tlsOn() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if certFilesID(cfg) == s.certID {
		return
	}
	cert, ids, err := loadCert(cfg)
	s.certID = ids
	if err != nil {
		if s.certErr == nil {
			s.log.Error("changed TLS certificate not loaded; serving the old one", "err", err)
		}
		s.certErr = err
		return
	}
	s.cert.Store(cert)
	s.certErr = nil
	s.log.Info("TLS certificate reloaded", "cert", cfg.TLSCert)
}

func (s *Server) setRootErr(err error) {
	old := s.rootErr.Load()
	if err == nil {
		if old != nil {
			s.rootErr.Store(nil)
			s.log.Info("web root is back")
		}
		return
	}
	if old == nil {
		s.log.Error("web root unavailable", "err", err)
	}
	s.rootErr.Store(&err)
}
