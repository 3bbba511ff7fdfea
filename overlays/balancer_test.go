package overlays

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const testPasswordHash = "pbkdf2-sha256$100000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

// seed001Balancer is seed 001's HAProxy setup (mode http, roundrobin,
// check inter 500 fall 3 rise 2, stats on 1936) written as an overlay.
const seed001Balancer = `
port: 80
mode: http
algorithm: roundrobin
check: {interval: 500ms, fall: 3, rise: 2}
backends:
  - {name: web1-eth, address: "192.168.1.12:80"}
  - {name: web1-wlan, address: "192.168.1.22:80"}
  - {name: web2-eth, address: "192.168.1.13:80"}
  - {name: web2-wlan, address: "192.168.1.23:80"}
stats: {port: 1936, path: /haproxy-stats, user: admin, password_hash: "` + testPasswordHash + `"}
`

// seed003Balancer is seed 003's (names resolved when connecting).
const seed003Balancer = `
port: 80
backends:
  - {name: web1, address: "rpi-b:80"}
  - {name: web2, address: "rpi-c:80"}
`

func decodeBalancer(t *testing.T, src string) *Balancer {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	var b Balancer
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	return &b
}

func validateBalancer(b *Balancer) []Problem {
	p := &problems{}
	b.validate(p, "balancer", nil)
	return p.list
}

func TestBalancerSeeds(t *testing.T) {
	for name, src := range map[string]string{"001": seed001Balancer, "003": seed003Balancer} {
		b := decodeBalancer(t, src)
		if probs := validateBalancer(b); len(probs) != 0 {
			t.Errorf("seed %s: %v", name, probs)
		}
	}
	b := decodeBalancer(t, seed001Balancer)
	if b.Check.Interval.Duration != 500*time.Millisecond || b.Check.Fall != 3 || b.Check.Rise != 2 {
		t.Errorf("check = %+v", b.Check)
	}
}

func TestBalancerValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // fields expected in problems
	}{
		{"no backends", `port: 80`, []string{"balancer.backends"}},
		{"bad port", "port: 70000\nbackends: [{name: a, address: '1.2.3.4:80'}]", []string{"balancer.port"}},
		{"bad mode", "mode: udp\nbackends: [{name: a, address: '1.2.3.4:80'}]", []string{"balancer.mode"}},
		{"bad algorithm", "algorithm: random\nbackends: [{name: a, address: '1.2.3.4:80'}]", []string{"balancer.algorithm"}},
		{"hdr without header", "algorithm: hdr\nbackends: [{name: a, address: '1.2.3.4:80'}]", []string{"balancer.hash_header"}},
		{"url_param without param", "algorithm: url_param\nbackends: [{name: a, address: '1.2.3.4:80'}]", []string{"balancer.hash_param"}},
		{"domain only without hdr", "hash_domain_only: true\nbackends: [{name: a, address: '1.2.3.4:80'}]", []string{"balancer.hash_domain_only"}},
		{"uri_len with roundrobin", "uri_len: 3\nbackends: [{name: a, address: '1.2.3.4:80'}]", []string{"balancer.uri_len"}},
		{"uri in tcp", "mode: tcp\nalgorithm: uri\nbackends: [{name: a, address: '1.2.3.4:80'}]", []string{"balancer.algorithm"}},
		{"cookie in tcp", "mode: tcp\ncookie: {}\nbackends: [{name: a, address: '1.2.3.4:80'}]", []string{"balancer.cookie"}},
		{"duplicate names", "backends: [{name: a, address: '1.2.3.4:80'}, {name: a, address: '1.2.3.5:80'}]", []string{"balancer.backends[1].name"}},
		{"bad address", "backends: [{name: a, address: '1.2.3.4'}, {name: b, address: 'x y:80'}, {name: c, address: 'h:0'}]",
			[]string{"balancer.backends[0].address", "balancer.backends[1].address", "balancer.backends[2].address"}},
		{"bad weight", "backends: [{name: a, address: 'h:80', weight: 300}]", []string{"balancer.backends[0].weight"}},
		{"only backups", "backends: [{name: a, address: 'h:80', backup: true}]", []string{"balancer.backends"}},
		{"bad check", "check: {type: icmp, fall: -1, interval: 1ms, path: x}\nbackends: [{name: a, address: 'h:80'}]",
			[]string{"balancer.check.type", "balancer.check.fall", "balancer.check.interval", "balancer.check.path"}},
		{"stats bad path", "stats: {path: 'stats?x', user: u, password_hash: '" + testPasswordHash + "'}\nbackends: [{name: a, address: 'h:80'}]", []string{"balancer.stats.path"}},
		{"stats plain password", "stats: {user: u, password_hash: secret}\nbackends: [{name: a, address: 'h:80'}]", []string{"balancer.stats.password_hash"}},
		{"stats port clash", "port: 8080\nstats: {port: 8080, user: u, password_hash: '" + testPasswordHash + "'}\nbackends: [{name: a, address: 'h:80'}]", []string{"balancer.stats.port"}},
		{"tls relative", "tls: {certs: [{cert: a.pem, key: /k.pem}]}\nbackends: [{name: a, address: 'h:80'}]", []string{"balancer.tls.certs[0].cert"}},
		{"tls no certs", "tls: {port: 8443}\nbackends: [{name: a, address: 'h:80'}]", []string{"balancer.tls.certs"}},
		{"negative timeout", "timeouts: {server: -1s}\nbackends: [{name: a, address: 'h:80'}]", []string{"balancer.timeouts.server"}},
		{"small header limit", "limits: {max_header_bytes: 10}\nbackends: [{name: a, address: 'h:80'}]", []string{"balancer.limits.max_header_bytes"}},
		{"retries", "retries: 9\nbackends: [{name: a, address: 'h:80'}]", []string{"balancer.retries"}},
		{"all fine", `
mode: http
algorithm: uri
uri_len: 10
uri_depth: 2
retries: 0
forwarded: both
send_proxy_v2: true
cookie: {name: SRV, mode: prefix}
check: {type: http, path: /health, interval: 1s, timeout: 300ms, fall: 2, rise: 1}
timeouts: {connect: 1s, client: 10s, server: 10s, queue: 2s, keep_alive: 30s, grace: 5s}
limits: {max_conn: 1000, max_header_bytes: 8192, max_body_bytes: 1000000}
tls: {port: 8443, certs: [{cert: /data/tls/a.pem, key: /data/tls/a.key}]}
backends:
  - {name: a, address: '[::1]:80', weight: 3, max_conn: 10}
  - {name: b, address: 'web-2.local:8080', backup: true, no_check: true, drain: true}
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := validateBalancer(decodeBalancer(t, tt.yaml))
			got := map[string]bool{}
			for _, p := range probs {
				got[p.Field] = true
			}
			for _, w := range tt.want {
				if !got[w] {
					t.Errorf("no problem for %s; got %v", w, probs)
				}
			}
			if len(tt.want) == 0 && len(probs) != 0 {
				t.Errorf("unexpected problems: %v", probs)
			}
		})
	}
}

func FuzzBalancerOverlay(f *testing.F) {
	f.Add(seed001Balancer)
	f.Add(seed003Balancer)
	f.Add("algorithm: hdr\nhash_header: Host\nbackends: [{name: a, address: '[fe80::1%eth0]:80'}]")
	f.Fuzz(func(t *testing.T, src string) {
		dec := yaml.NewDecoder(strings.NewReader(src))
		dec.KnownFields(true)
		var b Balancer
		if dec.Decode(&b) != nil {
			return
		}
		validateBalancer(&b) // must not panic
	})
}
