// Package supervise runs a node's services as child processes: each in its
// own process group, restarted with exponential backoff when it fails, its
// output kept in a per-service ring buffer, its health polled over its unix
// socket, and stopped with SIGTERM, a grace period, then SIGKILL.
//
// The supervisor never waits for children itself: a Starter does. As PID 1
// (or a child subreaper) the init must reap every orphan, so on Linux one
// Reaper owns wait4(-1) and hands each exit to whoever started that pid.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultGrace          = 5 * time.Second
	DefaultMinBackoff     = time.Second
	DefaultMaxBackoff     = 60 * time.Second
	DefaultResetAfter     = 30 * time.Second
	DefaultLogLines       = 1000
	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
)

// States of a supervised service, as Status reports them.
const (
	StateRunning  = "running"  // the process is alive
	StateBackoff  = "backoff"  // it ended and waits to be restarted
	StateStopping = "stopping" // Stop sent SIGTERM and waits for the end
	StateStopped  = "stopped"  // Stop ended it; it is not restarted
	StateFinished = "finished" // it exited with DontRestart
)

// Health values other than an error text.
const (
	HealthOK         = "ok"
	HealthUnknown    = "unknown" // running, not checked yet
	HealthNotRunning = "not running"
)

// Config configures a Supervisor. Zero fields take the defaults above.
type Config struct {
	// Starter starts and signals the children. Required.
	Starter Starter
	// Clock times the backoff and the grace period; nil means the wall clock.
	Clock Clock
	// Log receives supervision events and every output line of every
	// service, with the service's name; nil means slog.Default().
	Log *slog.Logger
	// Grace is how long Stop waits after SIGTERM before SIGKILL.
	Grace time.Duration
	// MinBackoff is the first restart delay; each quick failure doubles it
	// up to MaxBackoff. A run of at least ResetAfter resets it.
	MinBackoff, MaxBackoff, ResetAfter time.Duration
	// LogLines is how many output lines are kept per service.
	LogLines int
	// Health checks one service through its socket; nil means an HTTP
	// GET /health over the unix socket that must answer 200.
	Health func(ctx context.Context, socket string) error
	// HealthInterval is how often Run polls health; HealthTimeout bounds
	// one check.
	HealthInterval, HealthTimeout time.Duration
}

// Spec describes one service to supervise.
type Spec struct {
	// Name identifies the service in logs and Status.
	Name string
	// Command is what to start; its Output is set by the supervisor.
	Command Command
	// Socket is the unix socket the service serves GET /health on; ""
	// means a running service counts as healthy.
	Socket string
}

// Status is a snapshot of one service.
type Status struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	PID      int    `json:"pid"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"last_exit"`
	Health   string `json:"health"`
}

// Healthy reports whether the service is running and passed its last check.
func (s Status) Healthy() bool { return s.State == StateRunning && s.Health == HealthOK }

// Supervisor runs services. Its methods are safe for concurrent use.
type Supervisor struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	services []*service
	byName   map[string]*service
	stopping bool // Stop was called: no more starts
}

// service is the supervisor's state of one Spec; guarded by Supervisor.mu.
type service struct {
	spec     Spec
	ring     *Ring
	state    string
	pid      int
	run      int // incremented on every start; tells stale callbacks apart
	started  time.Time
	restarts int
	lastExit string
	health   string
	backoff  time.Duration // the last restart delay; 0 after a long run
	timer    Timer         // pending restart or SIGKILL
	done     chan struct{} // closed when the current process has ended
}

// New returns a supervisor with cfg's defaults filled in.
func New(cfg Config) *Supervisor {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.ResetAfter == 0 {
		cfg.ResetAfter = DefaultResetAfter
	}
	if cfg.LogLines == 0 {
		cfg.LogLines = DefaultLogLines
	}
	if cfg.Health == nil {
		cfg.Health = CheckSocket
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.HealthTimeout == 0 {
		cfg.HealthTimeout = DefaultHealthTimeout
	}
	return &Supervisor{cfg: cfg, log: cfg.Log, byName: map[string]*service{}}
}

// Add registers spec and starts it. A failed first start is retried with
// backoff like a crash, so Add fails only for a bad or duplicate name or
// after Stop.
func (s *Supervisor) Add(spec Spec) error {
	if spec.Name == "" {
		return errors.New("adding service: empty name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return fmt.Errorf("adding service %s: supervisor is stopping", spec.Name)
	}
	if _, ok := s.byName[spec.Name]; ok {
		return fmt.Errorf("adding service %s: already supervised", spec.Name)
	}
	log := s.log.With("service", spec.Name)
	svc := &service{
		spec:   spec,
		health: HealthNotRunning,
		ring: NewRing(s.cfg.LogLines, func(line string) {
			log.Info(line)
		}),
	}
	s.services = append(s.services, svc)
	s.byName[spec.Name] = svc
	s.startLocked(svc)
	return nil
}

// startLocked starts svc's process, or schedules a retry when that fails.
func (s *Supervisor) startLocked(svc *service) {
	svc.timer = nil
	svc.run++
	run := svc.run
	cmd := svc.spec.Command
	cmd.Output = svc.ring
	done := make(chan struct{})
	pid, err := s.cfg.Starter.Start(cmd, func(e Exit) { s.exited(svc, run, e) })
	if err != nil {
		svc.ring.Write([]byte(fmt.Sprintf("piimage: starting %s: %v\n", svc.spec.Name, err)))
		svc.pid = 0
		svc.lastExit = "start failed: " + err.Error()
		svc.started = s.cfg.Clock.Now()
		close(done)
		svc.done = done
		s.scheduleRestartLocked(svc)
		return
	}
	svc.pid = pid
	svc.state = StateRunning
	svc.health = HealthUnknown
	svc.started = s.cfg.Clock.Now()
	svc.done = done
	s.log.Info("started", "service", svc.spec.Name, "pid", pid)
}

// exited handles the end of run number run of svc.
func (s *Supervisor) exited(svc *service, run int, e Exit) {
	svc.ring.Flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	if run != svc.run || svc.pid == 0 {
		return // a stale report; cannot happen with a correct Starter
	}
	if svc.timer != nil { // the SIGKILL timer of a Stop
		svc.timer.Stop()
		svc.timer = nil
	}
	svc.pid = 0
	svc.lastExit = e.String()
	svc.health = HealthNotRunning
	close(svc.done)
	uptime := s.cfg.Clock.Now().Sub(svc.started)
	s.log.Info("exited", "service", svc.spec.Name, "status", svc.lastExit, "uptime", uptime.Round(time.Millisecond))
	switch {
	case svc.state == StateStopping || s.stopping:
		svc.state = StateStopped
	case e.Signal == 0 && e.Code == DontRestart:
		svc.state = StateFinished
		s.log.Warn("not restarting: it exited with 125", "service", svc.spec.Name)
	default:
		s.scheduleRestartLocked(svc)
	}
}

// scheduleRestartLocked puts svc in backoff and arms its restart timer.
func (s *Supervisor) scheduleRestartLocked(svc *service) {
	if s.cfg.Clock.Now().Sub(svc.started) >= s.cfg.ResetAfter {
		svc.backoff = 0
	}
	if svc.backoff == 0 {
		svc.backoff = s.cfg.MinBackoff
	} else {
		svc.backoff = min(2*svc.backoff, s.cfg.MaxBackoff)
	}
	svc.state = StateBackoff
	run := svc.run
	s.log.Info("restarting after backoff", "service", svc.spec.Name, "delay", svc.backoff)
	svc.timer = s.cfg.Clock.AfterFunc(svc.backoff, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if svc.run != run || svc.state != StateBackoff || s.stopping {
			return
		}
		svc.restarts++
		s.startLocked(svc)
	})
}

// Stop stops every service: SIGTERM to each process group, then SIGKILL
// after the grace period. It returns when all have ended, or ctx's error.
// No service is started again afterwards.
func (s *Supervisor) Stop(ctx context.Context) error {
	// Services stop one at a time, the last added first: a role lists the
	// services others depend on first (the balancer before the VIP), so the
	// VIP hands the address over while the balancer still serves.
	for _, svc := range s.beginStop() {
		s.mu.Lock()
		w := s.stopLocked(svc)
		s.mu.Unlock()
		if w == nil {
			continue
		}
		select {
		case <-w:
		case <-ctx.Done():
			return fmt.Errorf("stopping services: %w", ctx.Err())
		}
	}
	return nil
}

// beginStop marks the supervisor as stopping, so that nothing is restarted,
// and returns the services in the order to stop them.
func (s *Supervisor) beginStop() []*service {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	order := make([]*service, 0, len(s.services))
	for i := len(s.services) - 1; i >= 0; i-- {
		order = append(order, s.services[i])
	}
	return order
}

// stopLocked begins stopping svc and returns what to wait on, or nil.
func (s *Supervisor) stopLocked(svc *service) chan struct{} {
	switch svc.state {
	case StateBackoff:
		if svc.timer != nil {
			svc.timer.Stop()
			svc.timer = nil
		}
		svc.state = StateStopped
		return nil
	case StateRunning:
	case StateStopping:
		return svc.done // a second Stop waits too
	default:
		return nil
	}
	svc.state = StateStopping
	pid, run := svc.pid, svc.run
	s.log.Info("stopping", "service", svc.spec.Name, "pid", pid, "grace", s.cfg.Grace)
	if err := s.cfg.Starter.Kill(pid, syscall.SIGTERM); err != nil {
		s.log.Warn("sending SIGTERM", "service", svc.spec.Name, "err", err)
	}
	svc.timer = s.cfg.Clock.AfterFunc(s.cfg.Grace, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if svc.run != run || svc.pid == 0 {
			return
		}
		s.log.Warn("grace period over: sending SIGKILL", "service", svc.spec.Name, "pid", pid)
		if err := s.cfg.Starter.Kill(pid, syscall.SIGKILL); err != nil {
			s.log.Warn("sending SIGKILL", "service", svc.spec.Name, "err", err)
		}
	})
	return svc.done
}

// Signal sends sig to the process group of the named service, e.g. SIGHUP
// to make it re-read its overlay.
func (s *Supervisor) Signal(name string, sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("signalling %s: no such service", name)
	}
	if svc.pid == 0 {
		return fmt.Errorf("signalling %s: not running", name)
	}
	return s.cfg.Starter.Kill(svc.pid, sig)
}

// Status returns every service's state, in the order they were added.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.services))
	for _, svc := range s.services {
		out = append(out, Status{
			Name:     svc.spec.Name,
			State:    svc.state,
			PID:      svc.pid,
			Restarts: svc.restarts,
			LastExit: svc.lastExit,
			Health:   svc.health,
		})
	}
	return out
}

// Logs returns the kept output lines of the named service.
func (s *Supervisor) Logs(name string) ([]string, bool) {
	s.mu.Lock()
	svc, ok := s.byName[name]
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return svc.ring.Lines(), true
}

// CheckHealth checks every running service once, concurrently, and records
// the results.
func (s *Supervisor) CheckHealth(ctx context.Context) {
	type probe struct {
		svc    *service
		run    int
		socket string
	}
	s.mu.Lock()
	var probes []probe
	for _, svc := range s.services {
		if svc.state == StateRunning {
			probes = append(probes, probe{svc, svc.run, svc.spec.Socket})
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Go(func() {
			result := HealthOK
			if p.socket != "" {
				cctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
				err := s.cfg.Health(cctx, p.socket)
				cancel()
				if err != nil {
					result = err.Error()
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if p.svc.run == p.run && p.svc.state == StateRunning {
				p.svc.health = result
			}
		})
	}
	wg.Wait()
}

// Run polls health every HealthInterval (the first time after one second)
// until ctx is done.
func (s *Supervisor) Run(ctx context.Context) {
	wait := min(time.Second, s.cfg.HealthInterval)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.CheckHealth(ctx)
		wait = s.cfg.HealthInterval
	}
}
