package balancer

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
)

// TestReloadUnderLoad adds, removes and re-weights backends while clients
// keep sending: not one request may fail.
func TestReloadUnderLoad(t *testing.T) {
	a, b, c := newTestBackend(t, "a"), newTestBackend(t, "b"), newTestBackend(t, "c")
	for _, tb := range []*testBackend{a, b, c} {
		tb.delay.Store(int64(time.Millisecond))
	}
	base := Config{Check: CheckConfig{Interval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond}}
	cfg := base
	cfg.Backends = backendConfigs(a, b)
	bal, url := startBalancer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	l := startLoad(ctx, url, 6, 20000)
	steps := [][]BackendConfig{
		{{Name: "a", Address: a.addr}, {Name: "b", Address: b.addr}, {Name: "c", Address: c.addr}},
		{{Name: "a", Address: a.addr}, {Name: "b", Address: b.addr, Weight: 5}, {Name: "c", Address: c.addr}},
		{{Name: "b", Address: b.addr, Weight: 5}, {Name: "c", Address: c.addr}},
		{{Name: "c", Address: c.addr, Weight: 2}},
		{{Name: "a", Address: a.addr}, {Name: "c", Address: c.addr, Weight: 2}, {Name: "b", Address: b.addr, Backup: true}},
		{{Name: "a", Address: a.addr, Drain: true}, {Name: "b", Address: b.addr}},
		{{Name: "a", Address: a.addr}, {Name: "b", Address: b.addr}},
	}
	for i, s := range steps {
		time.Sleep(150 * time.Millisecond)
		next := base
		next.Backends = s
		next.Algorithm = []string{"roundrobin", "leastconn"}[i%2]
		if err := bal.ReloadConfig(next); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	cancel()
	l.wait()
	if l.failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across reloads: %v", l.failed.Load(), l.ok.Load()+l.failed.Load(), l.errs)
	}
	if l.ok.Load() < 100 {
		t.Errorf("only %d requests in 3 s", l.ok.Load())
	}
	for _, n := range []string{"a", "b", "c"} {
		if l.byBackend[n] == 0 {
			t.Errorf("backend %s got nothing: %v", n, l.byBackend)
		}
	}
	// A listener change is refused and changes nothing.
	bad := base
	bad.Addr = "127.0.0.1:1"
	bad.Backends = backendConfigs(a)
	if err := bal.ReloadConfig(bad); err == nil || !strings.Contains(err.Error(), "port") {
		t.Errorf("port change: %v", err)
	}
	if len(bal.pool.Load().backends) != 2 {
		t.Error("a refused reload changed the backends")
	}
}

// TestDrainThenStop: a backend drained before a clean stop costs no
// request.
func TestDrainThenStop(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	a.delay.Store(int64(2 * time.Millisecond))
	b.delay.Store(int64(2 * time.Millisecond))
	cfg := Config{Backends: backendConfigs(a, b), Check: CheckConfig{Interval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond}}
	bal, url := startBalancer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	l := startLoad(ctx, url, 6, 20000)
	time.Sleep(300 * time.Millisecond)
	cfg.Backends = []BackendConfig{{Name: "a", Address: a.addr, Drain: true}, {Name: "b", Address: b.addr}}
	if err := bal.ReloadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	abe := bal.pool.Load().byName["a"]
	waitFor(t, 2*time.Second, "a's requests to finish", func() bool { return abe.inflight.Load() == 0 })
	hits := a.hits.Load()
	a.stop()
	time.Sleep(500 * time.Millisecond)
	cancel()
	l.wait()
	if l.failed.Load() != 0 {
		t.Errorf("%d requests failed on a clean drained stop: %v", l.failed.Load(), l.errs)
	}
	if a.hits.Load() != hits {
		t.Errorf("a drained backend got %d new requests", a.hits.Load()-hits)
	}
}

// TestCrashAndRestore: a backend killed under load costs at most the
// requests it had in flight; later requests are retried elsewhere; once it
// is back, its checks return it to rotation.
func TestCrashAndRestore(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	a.delay.Store(int64(3 * time.Millisecond))
	b.delay.Store(int64(3 * time.Millisecond))
	const workers = 6
	bal, url := startBalancer(t, Config{Backends: backendConfigs(a, b), Check: CheckConfig{Interval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond, Fall: 3, Rise: 2}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	l := startLoad(ctx, url, workers, 50000)
	time.Sleep(300 * time.Millisecond)
	abe := bal.pool.Load().byName["a"]
	a.crash()
	inflight := abe.inflight.Load()
	failedAtCrash := l.failed.Load()
	time.Sleep(500 * time.Millisecond)
	if abe.usable.Load() {
		t.Error("a crashed backend is still in rotation after 500 ms")
	}
	lost := l.failed.Load() - failedAtCrash
	if lost > workers {
		t.Errorf("%d requests failed after the crash (%d were in flight on it, %d clients): %v", lost, inflight, workers, l.errs)
	}
	t.Logf("crash: %d in flight on the backend, %d requests failed", inflight, lost)
	a.start()
	waitFor(t, 2*time.Second, "a to come back", func() bool { return abe.usable.Load() })
	hits := a.hits.Load()
	time.Sleep(200 * time.Millisecond)
	cancel()
	l.wait()
	if a.hits.Load() == hits {
		t.Error("a restored backend gets no requests")
	}
	if l.failed.Load() != lost+failedAtCrash {
		t.Errorf("requests failed after the crash had passed: %v", l.errs)
	}
}

// TestHungBackendUnderLoad: a backend that stops answering costs at most
// the server timeout for the requests sent to it before it is marked down.
func TestHungBackendUnderLoad(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	const workers = 4
	// Timeouts leave room for a busy machine: a healthy answer must never
	// take longer than the server timeout.
	bal, url := startBalancer(t, Config{
		// b is the control: unchecked, so that a slow machine cannot take
		// it down too.
		Backends:      []BackendConfig{{Name: "a", Address: a.addr}, {Name: "b", Address: b.addr, NoCheck: true}},
		Check:         CheckConfig{Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond, Fall: 2, Rise: 2},
		ServerTimeout: time.Second,
		ErrorLimit:    2,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l := startLoad(ctx, url, workers, 50000)
	time.Sleep(200 * time.Millisecond)
	a.hang.Store(true)
	abe := bal.pool.Load().byName["a"]
	waitFor(t, 2*time.Second, "a hung backend to be marked down", func() bool { return !abe.usable.Load() })
	time.Sleep(1200 * time.Millisecond) // requests already on it time out
	failed := l.failed.Load()
	a.hang.Store(false)
	waitFor(t, 2*time.Second, "a to come back", func() bool { return abe.usable.Load() })
	cancel()
	l.wait()
	if failed > workers+2 {
		t.Errorf("%d requests failed while a hung (%d clients, error limit 2): %v", failed, workers, l.errs)
	}
	if l.failed.Load() != failed {
		t.Errorf("requests failed after the backend recovered: %v", l.errs)
	}
	t.Logf("hang: %d requests failed (504 after 1 s), %d ok", failed, l.ok.Load())
}

func TestStatsPage(t *testing.T) {
	a := newTestBackend(t, "a")
	hash, err := hashPasswordWith("s3cret", []byte("0123456789abcdef"), 1000)
	if err != nil {
		t.Fatal(err)
	}
	bal, url := startBalancer(t, Config{Backends: backendConfigs(a), Stats: &StatsConfig{Addr: "127.0.0.1:0", Path: "/haproxy-stats", User: "admin", PasswordHash: hash}})
	get(t, &http.Client{}, url)
	bal.auth.Load().interval = 0
	surl := "http://" + bal.StatsAddr().String()
	for _, tt := range []struct {
		user, pass string
		path       string
		want       int
		contains   string
	}{
		{"", "", "/haproxy-stats", 401, ""},
		{"admin", "wrong", "/haproxy-stats", 401, ""},
		{"root", "s3cret", "/haproxy-stats", 401, ""},
		{"admin", "s3cret", "/haproxy-stats", 200, `<td class="l">a</td>`},
		{"admin", "s3cret", "/haproxy-stats", 200, `<td class="l">a</td>`}, // the cached path
		{"admin", "s3cret", "/", 404, ""},
		{"admin", "s3cret", "/stats.json", 200, `"Name": "a"`},
		{"admin", "s3cret", "/metrics", 200, `balancer_backend_up{backend="a"} 1`},
		{"admin", "s3cret", "/metrics", 200, `balancer_backend_requests_total{backend="a"} 1`},
		{"admin", "s3cret", "/metrics", 200, `balancer_backend_response_seconds_bucket{backend="a",le="+Inf"} 1`},
	} {
		req, _ := http.NewRequest("GET", surl+tt.path, nil)
		if tt.user != "" {
			req.SetBasicAuth(tt.user, tt.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s:%s %s: %d, want %d", tt.user, tt.pass, tt.path, resp.StatusCode, tt.want)
		}
		if !strings.Contains(string(body), tt.contains) {
			t.Errorf("%s: no %q in\n%s", tt.path, tt.contains, body)
		}
		if resp.Header.Get("Server") != "" || strings.Contains(string(body), "go1.") {
			t.Errorf("the stats page shows a version")
		}
	}
}

func TestHealthAndFactory(t *testing.T) {
	a := newTestBackend(t, "a")
	node := &overlays.Node{Hostname: "lb", Role: overlays.RoleLBMaster, Balancer: &overlays.Balancer{
		Port:     1, // never opened: New opens nothing
		Backends: []overlays.Backend{{Name: "a", Address: a.addr}},
		Check:    overlays.Check{Interval: overlays.Duration{Duration: 500 * time.Millisecond}, Fall: 3, Rise: 2},
	}}
	svc, err := New(node, nil)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Health() == nil {
		t.Error("Health is nil before Run")
	}
	cfg := svc.(*Balancer).cfg.Load()
	if cfg.Addr != ":1" || cfg.Check.Interval != 500*time.Millisecond || cfg.Retries != 1 {
		t.Errorf("config from overlay: %+v", cfg)
	}
	if _, err := New(&overlays.Node{}, nil); err == nil {
		t.Error("New without a balancer section succeeded")
	}
	bal, _ := startBalancer(t, Config{Backends: backendConfigs(a)})
	if err := bal.Health(); err != nil {
		t.Errorf("Health = %v while running", err)
	}
	// Reload through the overlay path.
	node.Balancer.Port = 0
	if err := bal.Reload(node); err == nil {
		t.Error("a reload changing the port was accepted")
	}
}

// TestBackupTakesOver: a backup gets traffic only while every primary is
// down.
func TestBackupTakesOver(t *testing.T) {
	a, s := newTestBackend(t, "a"), newTestBackend(t, "spare")
	bal, url := startBalancer(t, Config{
		Backends: []BackendConfig{{Name: "a", Address: a.addr}, {Name: "spare", Address: s.addr, Backup: true}},
		Check:    CheckConfig{Interval: 50 * time.Millisecond, Timeout: 500 * time.Millisecond, Fall: 2, Rise: 2},
	})
	c := &http.Client{}
	for range 5 {
		if _, _, be := get(t, c, url); be != "a" {
			t.Fatalf("went to %q while the primary is up", be)
		}
	}
	a.crash()
	// Requests keep working at once (retried on the backup), and the
	// backup stays in use once the checks took the primary down.
	for range 5 {
		if code, _, be := get(t, c, url); code != 200 || be != "spare" {
			t.Fatalf("after the crash: %d from %q", code, be)
		}
	}
	abe := bal.pool.Load().byName["a"]
	waitFor(t, 2*time.Second, "a to be marked down", func() bool { return !abe.usable.Load() })
	a.start()
	waitFor(t, 2*time.Second, "a to come back", func() bool { return abe.usable.Load() })
	if _, _, be := get(t, c, url); be != "a" {
		t.Errorf("went to %q after the primary came back", be)
	}
}

// TestGracefulStop: stopping the balancer lets a request in flight finish.
func TestGracefulStop(t *testing.T) {
	a := newTestBackend(t, "a")
	a.delay.Store(int64(300 * time.Millisecond))
	bal, err := NewFromConfig(Config{Addr: "127.0.0.1:0", Backends: backendConfigs(a)}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bal.Run(ctx) }()
	<-bal.Ready()
	url := "http://" + bal.Addr().String()
	res := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			res <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- resp.Status + " " + string(body)
	}()
	waitFor(t, time.Second, "the request to reach the backend", func() bool { return a.hits.Load() == 1 })
	cancel()
	if got := <-res; got != "200 OK a /slow 0" {
		t.Errorf("request in flight during the stop: %q", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("a stopped balancer still answers")
	}
}

// TestReloadTimeouts: timeouts and limits change without a restart.
func TestReloadTimeouts(t *testing.T) {
	a := newTestBackend(t, "a")
	a.delay.Store(int64(300 * time.Millisecond))
	cfg := Config{Backends: []BackendConfig{{Name: "a", Address: a.addr, NoCheck: true}}}
	bal, url := startBalancer(t, cfg)
	if code, _, _ := get(t, &http.Client{}, url); code != 200 {
		t.Fatalf("before: %d", code)
	}
	cfg.ServerTimeout = 100 * time.Millisecond
	cfg.MaxHeaderBytes = 1024
	cfg.ErrorLimit = -1
	if err := bal.ReloadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(t, &http.Client{}, url); code != 504 {
		t.Errorf("after lowering the server timeout: %d, want 504", code)
	}
	if code, _, _ := get(t, &http.Client{}, url, "X-Big", strings.Repeat("b", 2000)); code != 431 {
		t.Errorf("after lowering the header limit: %d, want 431", code)
	}
}
