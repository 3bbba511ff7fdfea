package wifi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when told to. Every After call is
// announced on armed, so that a test knows the Manager is waiting.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	armed   chan time.Time
}

type fakeWaiter struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0, armed: make(chan time.Time, 100)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := fakeWaiter{at: c.now.Add(d), c: make(chan time.Time, 1)}
	c.waiters = append(c.waiters, w)
	c.armed <- w.at
	return w.c
}

// advance moves the clock to t and fires the waiters due.
func (c *fakeClock) advance(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.c <- t
			continue
		}
		keep = append(keep, w)
	}
	c.waiters = keep
}

// fakeRadio records calls on calls and delivers events pushed by the
// test.
type fakeRadio struct {
	calls    chan string
	events   chan Event
	setupErr error
	params   chan ConnectParams
}

func newFakeRadio() *fakeRadio {
	return &fakeRadio{calls: make(chan string, 100), events: make(chan Event), params: make(chan ConnectParams, 100)}
}

func (r *fakeRadio) Setup(_ context.Context, p SetupParams) error {
	r.calls <- fmt.Sprintf("setup secured=%v country=%s", p.Secured, p.Country)
	return r.setupErr
}
func (r *fakeRadio) Connect(_ context.Context, p ConnectParams) error {
	r.params <- p
	r.calls <- "connect"
	return nil
}
func (r *fakeRadio) Disconnect(context.Context) error { r.calls <- "disconnect"; return nil }
func (r *fakeRadio) Signal(context.Context) (int, error) {
	r.calls <- "signal"
	return -52, nil
}
func (r *fakeRadio) Events() <-chan Event { return r.events }
func (r *fakeRadio) Close() error         { r.calls <- "close"; return nil }

// wait returns the next value of c, failing the test after a generous
// bound (a hung Manager, not a timing assumption).
func wait[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
	}
	var zero T
	return zero
}

func expectCall(t *testing.T, r *fakeRadio, want string) {
	t.Helper()
	if got := wait(t, r.calls, want); got != want {
		t.Fatalf("radio call %q, want %q", got, want)
	}
}

type harness struct {
	m      *Manager
	radio  *fakeRadio
	clock  *fakeClock
	hooks  chan string
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *harness {
	h := &harness{radio: newFakeRadio(), clock: newFakeClock(), hooks: make(chan string, 100), done: make(chan error, 1)}
	cfg.Interface, cfg.Radio, cfg.Clock = "wlan0", h.radio, h.clock
	cfg.Assign = func(context.Context) error { h.hooks <- "assign"; return nil }
	cfg.Unassign = func(context.Context) error { h.hooks <- "unassign"; return nil }
	h.m = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wait(t, h.done, "end of Run")
	})
	return h
}

// TestManagerOpenNetwork: setup, connect, the address only once
// associated, the signal read, link loss dropping the address and
// reconnecting, a failed attempt retried after the backoff, and a clean
// stop.
func TestManagerOpenNetwork(t *testing.T) {
	h := start(t, Config{SSID: "cafe", Country: "DE"})
	expectCall(t, h.radio, "setup secured=false country=DE")
	expectCall(t, h.radio, "connect")
	if p := wait(t, h.radio.params, "connect params"); string(p.SSID) != "cafe" || p.PMK != nil {
		t.Errorf("connect params %+v", p)
	}
	wait(t, h.clock.armed, "connect timer")
	if st := h.m.Status(); st.State != "connecting" || st.Connected || st.Attempts != 1 || st.Security != "open" {
		t.Errorf("status while connecting: %+v", st)
	}
	select {
	case x := <-h.hooks:
		t.Fatalf("%s before association", x)
	default:
	}

	h.radio.events <- Event{Kind: EvConnected, BSSID: apMAC}
	if got := wait(t, h.hooks, "assign"); got != "assign" {
		t.Fatalf("hook %q, want assign", got)
	}
	expectCall(t, h.radio, "signal")
	wait(t, h.clock.armed, "signal timer")
	st := h.m.Status()
	if st.State != "connected" || !st.Connected || st.BSSID != "02:00:00:00:01:00" || st.SignalDBM == nil || *st.SignalDBM != -52 || st.LastError != "" {
		t.Errorf("status when connected: %+v", st)
	}

	// The signal is read again after SignalEvery.
	h.clock.advance(t0.Add(DefaultSignalEvery))
	expectCall(t, h.radio, "signal")
	wait(t, h.clock.armed, "signal timer")

	h.radio.events <- Event{Kind: EvDisconnected, Err: errors.New("disconnected by the access point: reason 3 (leaving)")}
	if got := wait(t, h.hooks, "unassign"); got != "unassign" {
		t.Fatalf("hook %q, want unassign", got)
	}
	expectCall(t, h.radio, "connect")
	wait(t, h.clock.armed, "connect timer")
	if st := h.m.Status(); st.State != "connecting" || st.SignalDBM != nil || !strings.Contains(st.LastError, "reason 3") {
		t.Errorf("status after link loss: %+v", st)
	}

	h.radio.events <- Event{Kind: EvConnectFailed, Err: errors.New("connecting timed out: network not found")}
	at := wait(t, h.clock.armed, "backoff timer")
	st = h.m.Status()
	if st.State != "waiting to retry" || st.NextAttempt == nil || !st.NextAttempt.Equal(at) || !strings.Contains(st.LastError, "network not found") {
		t.Errorf("status while waiting: %+v (timer at %v)", st, at)
	}
	h.clock.advance(at)
	expectCall(t, h.radio, "connect")
	wait(t, h.clock.armed, "connect timer")

	h.cancel()
	expectCall(t, h.radio, "disconnect")
	expectCall(t, h.radio, "close")
	if err := wait(t, h.done, "end of Run"); err != nil {
		t.Errorf("Run: %v", err)
	}
	h.done <- nil // for the cleanup
	if st := h.m.Status(); st.State != "stopped" || st.Connected {
		t.Errorf("status after stop: %+v", st)
	}
}

// TestManagerOffloadUnsupported: a WPA2 network on a radio without the
// offload fails for good with a clear error, never tries to connect, and
// the status never holds the key.
func TestManagerOffloadUnsupported(t *testing.T) {
	pmk, _ := hex.DecodeString(ieeePMK)
	radio, clock := newFakeRadio(), newFakeClock()
	radio.setupErr = Permanent(fmt.Errorf("wlan0: %w", ErrOffloadUnsupported))
	logs := make(chan slog.Record, 100)
	m := New(Config{Interface: "wlan0", SSID: "IEEE", PMK: pmk, Radio: radio, Clock: clock, Log: slog.New(chanHandler(logs))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	expectCall(t, radio, "setup secured=true country=00")
	// The Manager logs the failure after publishing it.
	for r := wait(t, logs, "log"); r.Message != "wifi: giving up"; r = wait(t, logs, "log") {
	}
	st := m.Status()
	if st.State != "failed" || st.Security != "wpa2-psk" || !strings.Contains(st.LastError, "WPA2-PSK offload not supported by this radio") {
		t.Errorf("status %+v", st)
	}
	js, _ := json.Marshal(st)
	if strings.Contains(string(js), ieeePMK) || strings.Contains(strings.ToLower(string(js)), "password") {
		t.Errorf("status shows the key: %s", js)
	}
	cancel()
	expectCall(t, radio, "close")
	if err := wait(t, done, "end of Run"); err != nil {
		t.Error(err)
	}
	select {
	case c := <-radio.calls:
		t.Errorf("unexpected radio call %q", c)
	default:
	}
}

// chanHandler is a slog.Handler that sends every record to c.
type chanHandler chan slog.Record

func (h chanHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h chanHandler) Handle(_ context.Context, r slog.Record) error { h <- r; return nil }
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h chanHandler) WithGroup(string) slog.Handler                 { return h }

func TestManagerConfig(t *testing.T) {
	for _, cfg := range []Config{
		{SSID: "x", Radio: newFakeRadio()},
		{Interface: "wlan0", Radio: newFakeRadio()},
		{Interface: "wlan0", SSID: "x"},
		{Interface: "wlan0", SSID: "x", Radio: newFakeRadio(), PMK: []byte{1, 2}},
	} {
		if err := New(cfg).Run(context.Background()); err == nil {
			t.Errorf("Run(%+v): no error", cfg)
		}
	}
}
