package ota

import (
	"fmt"
	"strings"
	"time"
)

// Verdict is what a trial's health checks concluded so far.
type Verdict int

const (
	// Pending: keep checking.
	Pending Verdict = iota
	// Pass: every check passed for the stable period: commit.
	Pass
	// Fail: the deadline passed before that: roll back.
	Fail
)

func (v Verdict) String() string { return [...]string{"pending", "pass", "fail"}[v] }

// Defaults of HealthCheck.
const (
	DefaultHealthDeadline = 2 * time.Minute
	DefaultHealthStable   = 5 * time.Second
)

// HealthCheck times a trial's health checks. Zero fields take the
// defaults.
type HealthCheck struct {
	// Deadline is how long after the first observation every check must
	// have passed for Stable.
	Deadline time.Duration
	// Stable is how long every check must pass without a break.
	Stable time.Duration
}

// Checker turns a series of health observations into a verdict. It is a
// pure state machine over the times it is given; the init feeds it once a
// second.
type Checker struct {
	cfg      HealthCheck
	start    time.Time
	okSince  time.Time
	problems []string
	verdict  Verdict
}

// NewChecker starts a check at now.
func NewChecker(cfg HealthCheck, now time.Time) *Checker {
	if cfg.Deadline == 0 {
		cfg.Deadline = DefaultHealthDeadline
	}
	if cfg.Stable == 0 {
		cfg.Stable = DefaultHealthStable
	}
	return &Checker{cfg: cfg, start: now}
}

// Observe records the problems found at now (none means healthy) and
// returns the verdict and, on Fail, why. Once Pass or Fail, the verdict
// stays.
func (c *Checker) Observe(now time.Time, problems []string) (Verdict, string) {
	if c.verdict != Pending {
		return c.verdict, c.reason()
	}
	if len(problems) > 0 {
		c.okSince = time.Time{}
		c.problems = append([]string(nil), problems...)
	} else if c.okSince.IsZero() {
		c.okSince = now
	}
	switch {
	case !c.okSince.IsZero() && now.Sub(c.okSince) >= c.cfg.Stable:
		c.verdict = Pass
	case now.Sub(c.start) >= c.cfg.Deadline:
		c.verdict = Fail
	}
	return c.verdict, c.reason()
}

func (c *Checker) reason() string {
	if c.verdict != Fail {
		return ""
	}
	if len(c.problems) == 0 {
		return fmt.Sprintf("health checks did not pass for %v in a row within %v", c.cfg.Stable, c.cfg.Deadline)
	}
	return fmt.Sprintf("health checks failed for %v: %s", c.cfg.Deadline, strings.Join(c.problems, "; "))
}
