package balancer

import (
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
)

// seed001Node is seed 001's load balancer (HAProxy: mode http, roundrobin,
// check inter 500 fall 3 rise 2 on the wired and wireless address of both
// web servers; stats on 1936 with a hidden version) as an overlay.
const seed001Node = `
hostname: lbmaster
role: lbmaster
interfaces:
  eth0: {address: 192.168.1.14/24, gateway: 192.168.1.1}
vip: {router_id: 77, priority: 101, address: 192.168.1.15/24}
balancer:
  port: 80
  mode: http
  algorithm: roundrobin
  check: {interval: 500ms, fall: 3, rise: 2}
  backends:
    - {name: web1-eth, address: "192.168.1.12:80"}
    - {name: web1-wlan, address: "192.168.1.22:80"}
    - {name: web2-eth, address: "192.168.1.13:80"}
    - {name: web2-wlan, address: "192.168.1.23:80"}
  stats: {port: 1936, path: /haproxy-stats, user: admin, password_hash: "PASSWORD_HASH"}
`

// TestSeedOverlay parses seed 001's setup through the real overlay parser
// and builds the balancer from it (no sockets are opened).
func TestSeedOverlay(t *testing.T) {
	hash, err := hashPasswordWith("pw", []byte("0123456789abcdef"), 10000)
	if err != nil {
		t.Fatal(err)
	}
	node, err := overlays.Parse("lbmaster.yaml", []byte(strings.Replace(seed001Node, "PASSWORD_HASH", hash, 1)))
	if err != nil {
		t.Fatalf("parsing the seed's overlay: %v", err)
	}
	svc, err := New(node, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := svc.(*Balancer).cfg.Load()
	if cfg.Addr != ":80" || cfg.Algorithm != "roundrobin" || len(cfg.Backends) != 4 ||
		cfg.Check.Interval != 500*time.Millisecond || cfg.Check.Fall != 3 || cfg.Check.Rise != 2 ||
		cfg.Stats.Addr != ":1936" || cfg.Stats.Path != "/haproxy-stats" {
		t.Errorf("config %+v", cfg)
	}
	// A broken section names the field.
	bad := strings.Replace(seed001Node, "algorithm: roundrobin", "algorithm: random", 1)
	bad = strings.Replace(bad, "PASSWORD_HASH", hash, 1)
	if _, err := overlays.Parse("lbmaster.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "balancer.algorithm") {
		t.Errorf("a bad algorithm: %v", err)
	}
}
