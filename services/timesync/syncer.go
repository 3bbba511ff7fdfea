package timesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Defaults of a Syncer.
const (
	// StepThreshold is the smallest offset the Syncer corrects; smaller
	// ones are left alone (a Pi's crystal drifts well under this between
	// two rounds).
	StepThreshold = 128 * time.Millisecond
	// TrustOffset is how close a clock the Syncer may not set must be to
	// a server's to be trusted.
	TrustOffset = time.Second
	// QueryTimeout bounds one query.
	QueryTimeout = 2 * time.Second
	// MaxBackoff bounds the wait between failed rounds.
	MaxBackoff = 64 * time.Second
)

// State is what the Syncer knows, for the status page.
type State struct {
	// Trusted reports whether the clock is known to be right: the Syncer
	// set it from a server, or (when it may not set it) a server agreed
	// with it within TrustOffset.
	Trusted bool `json:"trusted"`
	// Settable reports whether the Syncer may set the clock.
	Settable bool `json:"settable"`
	// Servers are the configured servers.
	Servers []string `json:"servers"`
	// Server answered last; LastSync is when (by the corrected clock).
	Server   string    `json:"server,omitempty"`
	LastSync time.Time `json:"last_sync,omitzero"`
	// Offset and Delay are the last sample's; Stepped is the last
	// correction applied to the clock.
	OffsetMS  float64 `json:"offset_ms"`
	DelayMS   float64 `json:"delay_ms"`
	SteppedMS float64 `json:"stepped_ms"`
	Stratum   int     `json:"stratum,omitempty"`
	// LastError is the last round's failure; "" after a good round.
	LastError string `json:"last_error,omitempty"`
}

// Syncer keeps the clock set from NTP servers. Fields are read when Run
// starts; zero values mean the defaults named.
type Syncer struct {
	// Servers are host:port; none means the time is never trusted.
	Servers []string
	// Interval is the time between good rounds; 0 means 15 minutes.
	Interval time.Duration
	// Clock is read and, when SetClock is true, set. Required.
	Clock Clock
	// SetClock lets the Syncer step Clock; only PID 1 sets it.
	SetClock bool
	// Query asks one server; nil means SNTP over UDP.
	Query func(ctx context.Context, server string) (Sample, error)
	// Log receives clock steps and failures; nil means slog.Default().
	Log *slog.Logger

	mu       sync.Mutex
	state    State
	failures int
	trusted  chan struct{} // closed once trusted
}

// State returns a copy of the current state.
func (s *Syncer) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	st.Servers = append([]string(nil), s.Servers...)
	st.Settable = s.SetClock
	return st
}

func (s *Syncer) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trusted == nil {
		s.trusted = make(chan struct{})
	}
}

// Trusted returns a channel closed once the clock is trusted.
func (s *Syncer) Trusted() <-chan struct{} {
	s.init()
	return s.trusted
}

// Round queries every server once, takes the sample with the shortest
// delay, steps the clock by its offset when allowed and needed, and
// returns how long to wait before the next round: Interval after a good
// round, else a backoff from 1 s doubling to MaxBackoff.
func (s *Syncer) Round(ctx context.Context) time.Duration {
	s.init()
	interval := s.Interval
	if interval == 0 {
		interval = 15 * time.Minute
	}
	best, err := s.best(ctx)
	if err != nil {
		s.mu.Lock()
		s.state.LastError = err.Error()
		s.failures++
		n := s.failures
		s.mu.Unlock()
		backoff := time.Second << min(n-1, 6)
		if errors.Is(err, errKiss) {
			backoff = MaxBackoff
		}
		s.log().Warn("time sync failed", "err", err, "retry_in", backoff)
		return min(backoff, MaxBackoff, interval)
	}

	trusted := false
	var stepped time.Duration
	var stepErr error
	switch abs := max(best.Offset, -best.Offset); {
	case s.SetClock && abs >= StepThreshold:
		if stepErr = s.Clock.Set(s.Clock.Now().Add(best.Offset)); stepErr == nil {
			stepped, trusted = best.Offset, true
			s.log().Info("clock set", "server", best.Server, "step", best.Offset, "delay", best.Delay)
		}
	case s.SetClock:
		trusted = true
	default:
		trusted = abs < TrustOffset
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = 0
	s.state.Server = best.Server
	s.state.LastSync = s.Clock.Now()
	s.state.OffsetMS = ms(best.Offset)
	s.state.DelayMS = ms(best.Delay)
	s.state.Stratum = best.Stratum
	s.state.LastError = ""
	if stepped != 0 {
		s.state.SteppedMS = ms(stepped)
	}
	switch {
	case stepErr != nil:
		s.state.LastError = fmt.Sprintf("setting the clock: %v", stepErr)
	case !trusted:
		s.state.LastError = fmt.Sprintf("the clock is %v off %s and this process may not set it", best.Offset, best.Server)
	}
	if trusted && !s.state.Trusted {
		s.state.Trusted = true
		close(s.trusted)
	}
	return interval
}

var errKiss = errors.New("kiss-o'-death")

// best queries every server and returns the sample with the least delay.
func (s *Syncer) best(ctx context.Context) (Sample, error) {
	if len(s.Servers) == 0 {
		return Sample{}, errors.New("no NTP server configured (time.servers, or a gateway on eth0)")
	}
	query := s.Query
	if query == nil {
		query = func(ctx context.Context, server string) (Sample, error) {
			return queryUDP(ctx, server, s.Clock, QueryTimeout)
		}
	}
	var best *Sample
	var errs []string
	kiss := false
	for _, srv := range s.Servers {
		smp, err := query(ctx, srv)
		if err != nil {
			var k *KissError
			kiss = kiss || errors.As(err, &k)
			errs = append(errs, fmt.Sprintf("%s: %v", srv, err))
			continue
		}
		smp.Server = srv
		if best == nil || smp.Delay < best.Delay {
			best = &smp
		}
	}
	if best == nil {
		err := errors.New(strings.Join(errs, "; "))
		if kiss {
			err = fmt.Errorf("%w: %v", errKiss, err)
		}
		return Sample{}, err
	}
	return *best, nil
}

// Run runs rounds until ctx is done; wait waits between them (nil: a
// timer).
func (s *Syncer) Run(ctx context.Context, wait func(ctx context.Context, d time.Duration)) {
	if wait == nil {
		wait = func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}
	for ctx.Err() == nil {
		d := s.Round(ctx)
		wait(ctx, d)
	}
}

func (s *Syncer) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
