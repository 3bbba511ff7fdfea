package ota

import (
	"strings"
	"testing"
	"time"
)

func TestChecker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := HealthCheck{Deadline: 60 * time.Second, Stable: 5 * time.Second}
	bad := []string{"web: not running"}
	type obs struct {
		at       int // seconds after the start
		problems []string
		want     Verdict
	}
	for _, tc := range []struct {
		name   string
		obs    []obs
		reason string
	}{
		{"healthy at once", []obs{{0, nil, Pending}, {4, nil, Pending}, {5, nil, Pass}}, ""},
		{"healthy after a while", []obs{{0, bad, Pending}, {10, bad, Pending}, {20, nil, Pending}, {25, nil, Pass}}, ""},
		{"a break restarts the stable period", []obs{{0, nil, Pending}, {4, bad, Pending}, {5, nil, Pending}, {9, nil, Pending}, {10, nil, Pass}}, ""},
		{"never healthy", []obs{{0, bad, Pending}, {59, bad, Pending}, {60, bad, Fail}}, "web: not running"},
		{"healthy too late", []obs{{0, bad, Pending}, {58, nil, Pending}, {60, nil, Fail}}, "web: not running"},
		{"a verdict stays", []obs{{0, nil, Pending}, {5, nil, Pass}, {6, bad, Pass}}, ""},
		{"fail stays", []obs{{0, bad, Pending}, {60, bad, Fail}, {70, nil, Fail}}, "failed for 1m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChecker(cfg, t0)
			var reason string
			for _, o := range tc.obs {
				var v Verdict
				v, reason = c.Observe(t0.Add(time.Duration(o.at)*time.Second), o.problems)
				if v != o.want {
					t.Fatalf("at %ds: %v, want %v", o.at, v, o.want)
				}
			}
			if !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q, want %q", reason, tc.reason)
			}
		})
	}
	if c := NewChecker(HealthCheck{}, t0); c.cfg.Deadline != DefaultHealthDeadline || c.cfg.Stable != DefaultHealthStable {
		t.Errorf("defaults: %+v", c.cfg)
	}
}
