package balancer

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func testPool(t *testing.T, alg string, bcs ...BackendConfig) *pool {
	t.Helper()
	c, err := Config{Addr: ":0", Algorithm: alg, HashHeader: "X-User", HashParam: "id", Backends: bcs}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var list []*backend
	for _, bc := range c.Backends {
		list = append(list, newBackend(bc, time.Unix(0, 0)))
	}
	return newPool(&c, list)
}

func setUp(p *pool, name string, up bool) {
	be := p.byName[name]
	be.mu.Lock()
	be.health.Up = up
	be.mu.Unlock()
	be.refresh()
	p.rebuild()
}

func count(p *pool, n int, key func(i int) (uint64, bool)) map[string]int {
	got := map[string]int{}
	for i := range n {
		k, ok := key(i)
		if be := p.pick(k, ok, nil); be != nil {
			got[be.name]++
		} else {
			got["<none>"]++
		}
	}
	return got
}

func noKey(int) (uint64, bool) { return 0, false }

func keyed(i int) (uint64, bool) { return hashString(fmt.Sprint("user-", i)), true }

func TestRoundRobin(t *testing.T) {
	tests := []struct {
		name string
		bcs  []BackendConfig
		down []string
		want map[string]int
	}{
		{"equal", []BackendConfig{{Name: "a", Address: "h:1"}, {Name: "b", Address: "h:2"}, {Name: "c", Address: "h:3"}}, nil,
			map[string]int{"a": 100, "b": 100, "c": 100}},
		{"weighted 3:1", []BackendConfig{{Name: "a", Address: "h:1", Weight: 3}, {Name: "b", Address: "h:2", Weight: 1}}, nil,
			map[string]int{"a": 225, "b": 75}},
		{"one down", []BackendConfig{{Name: "a", Address: "h:1"}, {Name: "b", Address: "h:2"}, {Name: "c", Address: "h:3"}}, []string{"b"},
			map[string]int{"a": 150, "c": 150}},
		{"backup idle while a primary is up", []BackendConfig{{Name: "a", Address: "h:1"}, {Name: "b", Address: "h:2"}, {Name: "s", Address: "h:3", Backup: true}}, []string{"a"},
			map[string]int{"b": 300}},
		{"backup takes over", []BackendConfig{{Name: "a", Address: "h:1"}, {Name: "s", Address: "h:3", Backup: true}}, []string{"a"},
			map[string]int{"s": 300}},
		{"drained gets nothing", []BackendConfig{{Name: "a", Address: "h:1"}, {Name: "b", Address: "h:2", Drain: true}}, nil,
			map[string]int{"a": 300}},
		{"all down", []BackendConfig{{Name: "a", Address: "h:1"}}, []string{"a"},
			map[string]int{"<none>": 300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(t, "roundrobin", tt.bcs...)
			for _, d := range tt.down {
				setUp(p, d, false)
			}
			got := count(p, 300, noKey)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSmoothWeightedSpreads(t *testing.T) {
	p := testPool(t, "roundrobin", BackendConfig{Name: "a", Address: "h:1", Weight: 5}, BackendConfig{Name: "b", Address: "h:2", Weight: 1}, BackendConfig{Name: "c", Address: "h:3", Weight: 1})
	var seq string
	for _, be := range p.view.Load().seq {
		seq += be.name
	}
	if seq != "aabacaa" {
		t.Errorf("sequence %q, want nginx's smooth order aabacaa", seq)
	}
}

func TestLeastConn(t *testing.T) {
	p := testPool(t, "leastconn", BackendConfig{Name: "a", Address: "h:1"}, BackendConfig{Name: "b", Address: "h:2"}, BackendConfig{Name: "c", Address: "h:3", Weight: 2})
	p.byName["a"].inflight.Store(4)
	p.byName["b"].inflight.Store(1)
	p.byName["c"].inflight.Store(3) // 3/2 = 1.5 per weight
	if got := p.pick(0, false, nil).name; got != "b" {
		t.Errorf("picked %s, want b", got)
	}
	if got := p.pick(0, false, p.byName["b"]).name; got != "c" {
		t.Errorf("excluding b picked %s, want c", got)
	}
	// Equal loads spread evenly.
	for _, n := range []string{"a", "b", "c"} {
		p.byName[n].inflight.Store(0)
	}
	got := count(p, 300, noKey)
	if got["a"] != 100 || got["b"] != 100 || got["c"] != 100 {
		t.Errorf("equal loads: %v", got)
	}
}

// TestConsistentHash checks each hash algorithm's spread, its stickiness,
// and that a backend going down moves only its own keys.
func TestConsistentHash(t *testing.T) {
	for _, alg := range []string{"source", "uri", "url_param", "hdr"} {
		t.Run(alg, func(t *testing.T) {
			p := testPool(t, alg, BackendConfig{Name: "a", Address: "h:1"}, BackendConfig{Name: "b", Address: "h:2"},
				BackendConfig{Name: "c", Address: "h:3", Weight: 2})
			const n = 20000
			before := make([]string, n)
			share := map[string]int{}
			for i := range n {
				k, _ := keyed(i)
				be := p.pick(k, true, nil)
				before[i] = be.name
				share[be.name]++
				if again := p.pick(k, true, nil); again != be {
					t.Fatalf("key %d moved from %s to %s", i, be.name, again.name)
				}
			}
			for name, want := range map[string]float64{"a": 0.25, "b": 0.25, "c": 0.5} {
				if got := float64(share[name]) / n; math.Abs(got-want) > 0.02 {
					t.Errorf("%s got %.3f of keys, want %.2f", name, got, want)
				}
			}
			setUp(p, "b", false)
			moved := 0
			for i := range n {
				k, _ := keyed(i)
				now := p.pick(k, true, nil).name
				if before[i] != "b" && now != before[i] {
					moved++
				}
				if now == "b" {
					t.Fatal("a down backend got a key")
				}
			}
			if moved != 0 {
				t.Errorf("%d keys of other backends moved when b went down", moved)
			}
			setUp(p, "b", true)
			for i := range n {
				k, _ := keyed(i)
				if now := p.pick(k, true, nil).name; now != before[i] {
					t.Fatalf("key %d did not return to %s", i, before[i])
				}
			}
			// No key: round-robin.
			if got := count(p, 400, noKey); got["a"] != 100 || got["b"] != 100 || got["c"] != 200 {
				t.Errorf("without a key: %v", got)
			}
		})
	}
}

func TestMaxConnPrefersFreeBackend(t *testing.T) {
	p := testPool(t, "roundrobin", BackendConfig{Name: "a", Address: "h:1", MaxConn: 1}, BackendConfig{Name: "b", Address: "h:2"})
	p.byName["a"].inflight.Store(1)
	got := count(p, 10, noKey)
	if got["b"] != 10 {
		t.Errorf("got %v, want every request on b while a is full", got)
	}
}

func TestRetryFallsBackToBackup(t *testing.T) {
	p := testPool(t, "roundrobin", BackendConfig{Name: "a", Address: "h:1"}, BackendConfig{Name: "s", Address: "h:2", Backup: true})
	if got := p.pick(0, false, p.byName["a"]); got == nil || got.name != "s" {
		t.Errorf("retry after the only primary failed picked %v, want the backup", got)
	}
	p2 := testPool(t, "roundrobin", BackendConfig{Name: "a", Address: "h:1"})
	if got := p2.pick(0, false, p2.byName["a"]); got != nil {
		t.Errorf("picked %s with nothing left", got.name)
	}
}
