package balancer

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/piimage/piimage/services"
)

func TestControlDrainWaitsForInflightThenUndrain(t *testing.T) {
	a, b := newTestBackend(t, "a"), newTestBackend(t, "b")
	cfg := Config{Backends: backendConfigs(a, b)}
	for i := range cfg.Backends {
		cfg.Backends[i].NoCheck = true
	}
	bal, url := startBalancer(t, cfg)
	c := &http.Client{Timeout: 5 * time.Second}

	// One slow request in flight on a; the drain must wait for it.
	a.delay.Store(int64(300 * time.Millisecond))
	var wg sync.WaitGroup
	slowStatus := 0
	wg.Go(func() {
		for i := 0; i < 10; i++ { // roundrobin: one of the first two lands on a
			if _, _, be := get(t, c, url+"/slow"); be == "a" {
				slowStatus = 200
				return
			}
		}
	})
	deadline := time.Now().Add(2 * time.Second)
	for a.hits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	msg, err := bal.Control(context.Background(), "drain", "a")
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("drain returned after %v with a request in flight (%q)", took, msg)
	}
	wg.Wait()
	if slowStatus != 200 {
		t.Fatal("the request in flight during the drain did not finish on a")
	}
	a.delay.Store(0)
	hitsA := a.hits.Load()
	for i := 0; i < 20; i++ {
		if _, _, be := get(t, c, url+"/"); be != "b" {
			t.Fatalf("request %d went to %q while a was drained", i, be)
		}
	}
	if a.hits.Load() != hitsA {
		t.Fatal("a got requests while drained")
	}
	if _, err := bal.Control(context.Background(), "undrain", "a"); err != nil {
		t.Fatalf("undrain: %v", err)
	}
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		_, _, be := get(t, c, url+"/")
		seen[be] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("after undrain requests went to %v, want both", seen)
	}
}

func TestControlRefusals(t *testing.T) {
	a := newTestBackend(t, "a")
	bal, _ := startBalancer(t, Config{Backends: backendConfigs(a)})
	var unknown *services.UnknownCommandError
	if _, err := bal.Control(context.Background(), "explode", "a"); !errors.As(err, &unknown) {
		t.Errorf("unknown command: got %v", err)
	}
	if _, err := bal.Control(context.Background(), "drain", "nope"); err == nil {
		t.Error("draining a backend that does not exist succeeded")
	}
}
