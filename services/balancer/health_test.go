package balancer

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeClock is the injected clock of health tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) advance(d time.Duration) time.Time {
	c.t = c.t.Add(d)
	return c.t
}

func TestHealthTransitions(t *testing.T) {
	const fall, rise = 3, 2
	type step struct {
		check   *bool // active check result
		traffic *bool // proxied request result
		want    string
		changed bool
	}
	ok, bad := true, false
	tests := []struct {
		name  string
		limit int
		steps []step
	}{
		{"down after fall failures", 5, []step{
			{check: &bad, want: "UP 1/3"},
			{check: &bad, want: "UP 2/3"},
			{check: &bad, want: "DOWN", changed: true},
			{check: &bad, want: "DOWN"},
		}},
		{"a pass resets the failures", 5, []step{
			{check: &bad, want: "UP 1/3"},
			{check: &bad, want: "UP 2/3"},
			{check: &ok, want: "UP"},
			{check: &bad, want: "UP 1/3"},
		}},
		{"up after rise passes", 5, []step{
			{check: &bad}, {check: &bad}, {check: &bad, want: "DOWN", changed: true},
			{check: &ok, want: "DOWN 1/2"},
			{check: &bad, want: "DOWN"},
			{check: &ok, want: "DOWN 1/2"},
			{check: &ok, want: "UP", changed: true},
		}},
		{"passive: down after limit failed requests", 3, []step{
			{traffic: &bad, want: "UP"},
			{traffic: &bad, want: "UP"},
			{traffic: &bad, want: "DOWN", changed: true},
			{check: &ok, want: "DOWN 1/2"},
			{check: &ok, want: "UP", changed: true},
		}},
		{"passive: a good request resets the count", 3, []step{
			{traffic: &bad}, {traffic: &bad}, {traffic: &ok, want: "UP"},
			{traffic: &bad}, {traffic: &bad, want: "UP"},
		}},
		{"passive off", 0, []step{
			{traffic: &bad}, {traffic: &bad}, {traffic: &bad}, {traffic: &bad, want: "UP"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1000, 0)}
			h := newHealthState(clk.now())
			for i, s := range tt.steps {
				now := clk.advance(500 * time.Millisecond)
				var changed bool
				if s.check != nil {
					changed = h.checkResult(now, *s.check, "msg", time.Millisecond, fall, rise)
				} else {
					changed = h.trafficResult(now, *s.traffic, "msg", tt.limit)
				}
				if changed != s.changed {
					t.Errorf("step %d: changed = %v, want %v", i, changed, s.changed)
				}
				if changed && !h.Since.Equal(now) {
					t.Errorf("step %d: since = %v, want %v", i, h.Since, now)
				}
				if s.want != "" {
					if got := h.String(fall, rise); got != s.want {
						t.Errorf("step %d: state %q, want %q", i, got, s.want)
					}
				}
			}
		})
	}
}

// TestSeedCheckTiming drives seed 001's "check inter 500 fall 3 rise 2"
// with the injected clock: a dead backend leaves rotation 1.5 s after its
// first failed check and comes back 1 s after it answers again.
func TestSeedCheckTiming(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	b, err := NewFromConfig(Config{
		Addr:     "127.0.0.1:0",
		Backends: []BackendConfig{{Name: "web1", Address: "127.0.0.1:1"}, {Name: "web2", Address: "127.0.0.1:2"}},
		Check:    CheckConfig{Interval: 500 * time.Millisecond, Fall: 3, Rise: 2},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.now = clk.now
	b.running.Store(true)
	web1 := b.pool.Load().byName["web1"]
	web2 := b.pool.Load().byName["web2"]
	var downAt, upAt time.Duration
	for tick := 1; tick <= 20; tick++ {
		clk.advance(500 * time.Millisecond)
		alive := tick < 4 || tick >= 10 // dies after the 3rd check, returns at the 10th
		b.observeCheck(web1, alive, "", time.Millisecond)
		b.observeCheck(web2, true, "", time.Millisecond)
		inView := false
		for _, be := range b.pool.Load().view.Load().active {
			inView = inView || be == web1
		}
		el := time.Duration(tick) * 500 * time.Millisecond
		if !inView && downAt == 0 {
			downAt = el
		}
		if inView && downAt != 0 && upAt == 0 {
			upAt = el
		}
	}
	if downAt != 3*time.Second { // failures at 2.0, 2.5, 3.0 s
		t.Errorf("web1 left rotation at %v, want 3s", downAt)
	}
	if upAt != 5500*time.Millisecond { // passes at 5.0, 5.5 s
		t.Errorf("web1 came back at %v, want 5.5s", upAt)
	}
	if err := b.Health(); err != nil {
		t.Errorf("Health = %v", err)
	}
	for range 3 {
		b.observeCheck(web1, false, "", 0)
		b.observeCheck(web2, false, "", 0)
	}
	if err := b.Health(); err == nil {
		t.Error("Health = nil with every backend down")
	}
}

func TestProbe(t *testing.T) {
	ok := newTestBackend(t, "ok")
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || r.Header.Get("User-Agent") != "piimage-balancer-check" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(503)
	}))
	defer status.Close()
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close() // accepts (kernel backlog) but never answers
	closed := deadBackend(t, "closed")
	b, err := NewFromConfig(Config{Addr: ":0", Backends: []BackendConfig{{Name: "x", Address: "h:1"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		typ, path, addr string
		ok              bool
		msg             string
	}{
		{"http", "/", ok.addr, true, "HTTP 200"},
		{"http", "/health", strings.TrimPrefix(status.URL, "http://"), false, "HTTP 503"},
		{"http", "/", closed.addr, false, "connect: connection refused"},
		{"http", "/", hung.Addr().String(), false, "reading answer"},
		{"tcp", "/", hung.Addr().String(), true, "connected"},
		{"tcp", "/", closed.addr, false, "connect: connection refused"},
	} {
		cfg := &Config{Check: CheckConfig{Type: tt.typ, Path: tt.path, Timeout: 200 * time.Millisecond}}
		got, msg := b.probe(context.Background(), cfg, &backend{name: "t", addr: tt.addr})
		if got != tt.ok || !strings.Contains(msg, tt.msg) {
			t.Errorf("%s check of %s%s: %v %q, want %v %q", tt.typ, tt.addr, tt.path, got, msg, tt.ok, tt.msg)
		}
	}
}
