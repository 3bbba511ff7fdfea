package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services"
)

// Service is the mirror as a node service: the primary or a replica,
// depending on its Config.
type Service struct {
	log *slog.Logger
	st  counters

	mu      sync.Mutex
	cfg     Config
	prim    *primary
	repl    *replica
	running bool
	reload  chan Config
	// node and waitErr are set while the secret file is missing: Run
	// waits for it and Health reports waitErr.
	node    *overlays.Node
	waitErr error
}

var _ services.Service = (*Service)(nil)

// New is the services.Factory of the mirror: it builds the configuration
// from the node's overlay (see ConfigFromNode; this reads the TLS material
// from the data partition) and opens no sockets.
//
// A missing secret file is not fatal: the service then waits for it to
// appear (checking every secretPoll) and Health reports what is missing.
func New(node *overlays.Node, log *slog.Logger) (services.Service, error) {
	cfg, err := ConfigFromNode(node)
	if err != nil && errors.Is(err, fs.ErrNotExist) && node.Mirror != nil && node.Mirror.TLS == nil {
		if log == nil {
			log = slog.Default()
		}
		log.Error("mirror: waiting for the cluster secret", "err", err)
		s := &Service{log: log, cfg: Config{Name: node.Hostname}, reload: make(chan Config, 1), node: node, waitErr: err}
		s.st.setErr(err)
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	return NewService(cfg, log)
}

// secretPoll is how often a mirror without its secret looks for it.
const secretPoll = 2 * time.Second

// waitSecret waits until the node's secret file can be read, a reload
// brings a configuration, or ctx is done (then it reports false).
func (s *Service) waitSecret(ctx context.Context) bool {
	t := time.NewTicker(secretPoll)
	defer t.Stop()
	for {
		s.mu.Lock()
		node := s.node
		s.mu.Unlock()
		if node == nil {
			return true
		}
		cfg, err := ConfigFromNode(node)
		if err == nil {
			cfg = cfg.withDefaults()
			err = cfg.check()
		}
		s.mu.Lock()
		if err == nil {
			s.cfg, s.node, s.waitErr = cfg, nil, nil
		} else {
			s.waitErr = err
		}
		s.mu.Unlock()
		if err == nil {
			s.log.Info("mirror: the cluster secret is there; starting")
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case c := <-s.reload:
			s.mu.Lock()
			s.cfg, s.node, s.waitErr = c, nil, nil
			s.mu.Unlock()
			return true
		case <-t.C:
		}
	}
}

// NewService returns the mirror for cfg.
func NewService(cfg Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &Service{log: log, cfg: cfg, reload: make(chan Config, 1)}, nil
}

// Run serves until ctx is done. A reload restarts the role with the new
// configuration; a file transfer cut off by it resumes.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("mirror: already running")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running, s.prim, s.repl = false, nil, nil
		s.mu.Unlock()
	}()
	if !s.waitSecret(ctx) {
		return nil
	}
	for {
		s.mu.Lock()
		cfg := s.cfg
		var run func(context.Context) error
		s.prim, s.repl = nil, nil
		if cfg.IsPrimary() {
			p, err := newPrimary(cfg, s.log, &s.st)
			if err != nil {
				s.mu.Unlock()
				return err
			}
			s.prim, run = p, p.run
		} else {
			r, err := newReplica(cfg, s.log, &s.st)
			if err != nil {
				s.mu.Unlock()
				return err
			}
			s.repl, run = r, r.run
		}
		s.mu.Unlock()

		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- run(rctx) }()
		select {
		case err := <-done:
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("mirror stopped")
			}
			s.st.setErr(err)
			return err
		case <-ctx.Done():
			cancel()
			<-done
			return nil
		case c := <-s.reload:
			cancel()
			<-done
			s.mu.Lock()
			s.cfg = c
			s.mu.Unlock()
			s.log.Info("mirror: reloaded")
		}
	}
}

// Reload applies a changed overlay. A configuration that does not check is
// refused and the mirror keeps the old one.
func (s *Service) Reload(node *overlays.Node) error {
	cfg, err := ConfigFromNode(node)
	if err != nil {
		return err
	}
	return s.ReloadConfig(cfg)
}

// ReloadConfig is Reload with a Config.
func (s *Service) ReloadConfig(cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return err
	}
	select {
	case <-s.reload:
	default:
	}
	s.reload <- cfg
	return nil
}

// Health reports nil while the mirror does its job: the primary lists its
// tree and listens; a replica is connected to its primary.
func (s *Service) Health() error {
	s.mu.Lock()
	p, r, waitErr := s.prim, s.repl, s.waitErr
	s.mu.Unlock()
	if waitErr != nil {
		return fmt.Errorf("mirror not started: %w", waitErr)
	}
	_, lastErr, _ := s.st.snapshot()
	switch {
	case p != nil:
		p.mu.Lock()
		ok := p.scanned && p.listen != nil
		p.mu.Unlock()
		if !ok {
			return fmt.Errorf("mirror primary not serving yet (last error: %s)", orNone(lastErr))
		}
		return nil
	case r != nil:
		if v := r.status(); !v.Connected {
			return fmt.Errorf("mirror replica not connected to %s (last error: %s)", s.cfg.Primary, orNone(lastErr))
		}
		return nil
	}
	return errors.New("mirror not running")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Status reports the mirror's state for the status page.
func (s *Service) Status() Status {
	s.mu.Lock()
	p, r, cfg := s.prim, s.repl, s.cfg
	s.mu.Unlock()
	st := Status{Name: cfg.Name, Root: cfg.Root, Primary: cfg.Primary}
	st.Counters, st.LastError, st.LastErrorAt = s.st.snapshot()
	switch {
	case p != nil:
		st.Role = "primary"
		st.Replicas = p.status(time.Now())
		p.mu.Lock()
		st.Gen = p.gen
		p.mu.Unlock()
		for _, rs := range st.Replicas {
			st.Counters.WireIn += rs.WireIn
			st.Counters.WireOut += rs.WireOut
		}
	case r != nil:
		st.Role = "replica"
		v := r.status()
		st.Self = &v
		st.Gen = v.AckedGen
		if v.Connected {
			st.Counters.WireIn += v.WireIn
			st.Counters.WireOut += v.WireOut
		}
	default:
		if cfg.IsPrimary() {
			st.Role = "primary"
		} else {
			st.Role = "replica"
		}
	}
	return st
}

// ListenAddr returns the primary's listening address once it listens, or
// nil.
func (s *Service) ListenAddr() (addr string) {
	s.mu.Lock()
	p := s.prim
	s.mu.Unlock()
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listen == nil {
		return ""
	}
	return p.listen.String()
}
