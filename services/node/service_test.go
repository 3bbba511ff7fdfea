package node

import (
	"context"
	"errors"

	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services"
	"github.com/piimage/piimage/services/supervise"
)

// childEnv makes the test binary run Main with testRegistry when the
// supervisor re-executes it as a service.
const childEnv = "PIIMAGE_NODE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, testRegistry(nil)))
	}
	os.Exit(m.Run())
}

// fakeService is a service for tests: it runs until cancelled and takes
// reloads unless the new hostname is "refuse".
type fakeService struct {
	log *slog.Logger

	mu       sync.Mutex
	hostname string
	health   error
	runErr   error
}

func (f *fakeService) Run(ctx context.Context) error {
	f.log.Info("fake running as " + f.host())
	<-ctx.Done()
	f.log.Info("fake stopping")
	return f.runErr
}

func (f *fakeService) Reload(n *overlays.Node) error {
	if n.Hostname == "refuse" {
		return errors.New("refusing hostname refuse")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hostname = n.Hostname
	return nil
}

func (f *fakeService) Health() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeService) host() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hostname
}

// testRegistry has "web" as a fakeService; built ones are sent on made.
func testRegistry(made chan<- *fakeService) Registry {
	return Registry{"web": func(n *overlays.Node, log *slog.Logger) (services.Service, error) {
		if n.Hostname == "badfactory" {
			return nil, errors.New("nothing to serve")
		}
		f := &fakeService{log: log, hostname: n.Hostname}
		if n.Hostname == "sick" {
			f.health = errors.New("backend down")
		}
		if n.Hostname == "crash" {
			f.runErr = errors.New("boom")
		}
		if made != nil {
			made <- f
		}
		return f, nil
	}}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func overlayWithHost(host string) string {
	return strings.Replace(goodOverlay, "hostname: node1", "hostname: "+host, 1)
}

func TestRunServiceExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		service  string
		host     string
		overlay  bool
		cancel   bool
		wantCode int
	}{
		{"unknown service", "nope", "node1", true, false, supervise.DontRestart},
		{"factory refuses", "web", "badfactory", true, false, supervise.DontRestart},
		{"missing overlay", "web", "node1", false, false, 1},
		{"graceful stop", "web", "node1", true, true, 0},
		{"run fails", "web", "crash", true, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ov := filepath.Join(dir, "node.yaml")
			if tt.overlay {
				writeFile(t, ov, overlayWithHost(tt.host))
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.cancel {
				cancel()
			}
			defer cancel()
			got := runService(ctx, serviceOptions{name: tt.service, overlay: ov, sock: filepath.Join(dir, "s.sock"),
				registry: testRegistry(nil), log: quietLog()})
			if got != tt.wantCode {
				t.Errorf("runService = %d, want %d", got, tt.wantCode)
			}
		})
	}
}

func TestRunServiceHealthAndReload(t *testing.T) {
	dir := t.TempDir()
	ov := filepath.Join(dir, "node.yaml")
	sock := filepath.Join(dir, "web.sock")
	writeFile(t, ov, overlayWithHost("node1"))
	made := make(chan *fakeService, 1)
	reload := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- runService(ctx, serviceOptions{name: "web", overlay: ov, sock: sock,
			registry: testRegistry(made), reload: reload, log: quietLog()})
	}()
	svc := <-made
	waitFor(t, "the health socket", func() bool { return supervise.CheckSocket(ctx, sock) == nil })

	svc.mu.Lock()
	svc.health = errors.New("backend down")
	svc.mu.Unlock()
	if err := supervise.CheckSocket(ctx, sock); err == nil || err.Error() != "unhealthy: backend down" {
		t.Errorf("health of a sick service = %v", err)
	}

	steps := []struct {
		overlay  string
		wantHost string
	}{
		{overlayWithHost("node7"), "node7"},
		{brokenOverlay, "node7"},             // invalid: kept
		{overlayWithHost("refuse"), "node7"}, // refused by the service: kept
		{overlayWithHost("node8"), "node8"},
	}
	for i, s := range steps {
		writeFile(t, ov, s.overlay)
		reload <- struct{}{}
		reload <- struct{}{} // the second send returns once the first was handled
		if got := svc.host(); got != s.wantHost {
			t.Errorf("step %d: hostname after reload = %q, want %q", i, got, s.wantHost)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("runService = %d, want 0", code)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

// syncBuffer is a concurrency-safe bytes buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
