package vip

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// linkPoll is how often interface links are read.
const linkPoll = 50 * time.Millisecond

// tracking evaluates every router's tracks and sends HealthChanged events
// when a verdict changes.
type tracking struct {
	sys      system
	balancer Tracker
	log      *slog.Logger

	mu     sync.Mutex
	checks map[string]*check // by key: "balancer" or the URL
}

func newTracking(sys system, balancer Tracker, log *slog.Logger) *tracking {
	return &tracking{sys: sys, balancer: balancer, log: log, checks: map[string]*check{}}
}

// check is a periodic check with fall/rise hysteresis.
type check struct {
	mu       sync.Mutex
	failing  bool
	lastErr  error
	ok, bad  int
	fall     int
	rise     int
	interval time.Duration
	probe    func(ctx context.Context) error
}

func (c *check) state() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failing, c.lastErr
}

func (c *check) run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		err := c.probe(ctx)
		c.mu.Lock()
		if err != nil {
			c.ok, c.bad, c.lastErr = 0, c.bad+1, err
			if c.bad >= c.fall {
				c.failing = true
			}
		} else {
			c.ok, c.bad = c.ok+1, 0
			if c.ok >= c.rise {
				c.failing, c.lastErr = false, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// get returns the check for key, starting it with mk on first use.
func (t *tracking) get(ctx context.Context, key string, mk func() *check) *check {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.checks[key]
	if c == nil {
		c = mk()
		t.checks[key] = c
		go c.run(ctx)
	}
	return c
}

func (t *tracking) run(ctx context.Context, runners []*runner) {
	last := make([]*HealthChanged, len(runners))
	tick := time.NewTicker(linkPoll)
	defer tick.Stop()
	for {
		links := map[string]bool{}
		linkUp := func(name string) bool {
			if up, ok := links[name]; ok {
				return up
			}
			up, err := t.sys.LinkUp(name)
			if err != nil {
				t.log.Debug("reading link", "err", err)
			}
			links[name] = up
			return up
		}
		for i, r := range runners {
			h := t.evaluate(ctx, r.cfg(), r.track(), linkUp)
			if last[i] == nil || *last[i] != h {
				if h.Fault || h.Penalty > 0 || last[i] != nil {
					r.log.Info("tracking", "fault", h.Fault, "penalty", h.Penalty, "reason", h.Reason)
				}
				last[i] = &h
				r.send(h)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// evaluate computes one router's verdict.
func (t *tracking) evaluate(ctx context.Context, c *Config, tc trackCfg, linkUp func(string) bool) HealthChanged {
	var h HealthChanged
	var why []string
	fail := func(weight int, reason string) {
		if weight == 0 {
			h.Fault = true
		}
		h.Penalty += weight
		why = append(why, reason)
	}
	if !linkUp(c.Interface) {
		fail(0, "link "+c.Interface+" down")
	}
	for _, ti := range tc.interfaces {
		if !linkUp(ti.Name) {
			fail(ti.Weight, "link "+ti.Name+" down")
		}
	}
	if b := tc.balancer; b != nil {
		every := b.Interval.Duration
		if every == 0 {
			every = 500 * time.Millisecond
		}
		ck := t.get(ctx, "balancer", func() *check {
			return &check{fall: 1, rise: 1, interval: every, probe: func(context.Context) error {
				if t.balancer == nil {
					return fmt.Errorf("no balancer in this process")
				}
				return t.balancer.Health()
			}}
		})
		if failing, err := ck.state(); failing {
			fail(b.Weight, fmt.Sprintf("balancer: %v", err))
		}
	}
	for _, ht := range tc.http {
		ht := ht
		ck := t.get(ctx, "http "+ht.URL, func() *check { return httpCheck(ht.URL, ht.Interval.Duration, ht.Timeout.Duration, ht.Fall, ht.Rise) })
		if failing, err := ck.state(); failing {
			fail(ht.Weight, fmt.Sprintf("%s: %v", ht.URL, err))
		}
	}
	h.Reason = strings.Join(why, "; ")
	return h
}

func httpCheck(url string, every, timeout time.Duration, fall, rise int) *check {
	if every == 0 {
		every = time.Second
	}
	if timeout == 0 {
		timeout = every
	}
	if fall == 0 {
		fall = 2
	}
	if rise == 0 {
		rise = 2
	}
	client := httpClient()
	return &check{fall: fall, rise: rise, interval: every, probe: func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}}
}
