package overlays

import (
	"net/netip"
	"testing"
	"time"
)

// replicaNode is web02 of the reference cluster, without a mirror section.
const replicaNode = `hostname: web02
role: web
interfaces:
  eth0:
    address: 192.168.1.11/24
`

func TestMirrorValid(t *testing.T) {
	n, err := Parse("web02.yaml", []byte(replicaNode+`mirror:
  primary: web01
  primary_address: 192.168.1.10
  port: 9873
  exclude: ["**/stats", "**/error", "**/files/pictures", "/cache/", "*.tmp"]
  tls: {ca: /data/mirror/ca.pem, cert: /data/mirror/web02.pem, key: /data/mirror/web02.key}
  scan_interval: 30s
  batch_delay: 50ms
  atomic_tree: true
`))
	if err != nil {
		t.Fatal(err)
	}
	m := n.Mirror
	if m.IsPrimary(n) || m.PrimaryDialAddress() != "192.168.1.10:9873" ||
		m.ScanIntervalOrDefault() != 30*time.Second || m.BatchDelayOrDefault() != 50*time.Millisecond ||
		len(m.Exclude) != 5 || m.TLS.Key != "/data/mirror/web02.key" || !m.AtomicTree {
		t.Errorf("got %+v", m)
	}
}

func TestMirrorDefaults(t *testing.T) {
	n, err := Parse("web02.yaml", []byte(replicaNode+"mirror: {primary: web01}\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := n.Mirror
	if m.PrimaryDialAddress() != "web01:8873" || m.SecretFileOrDefault() != DefaultMirrorSecretFile ||
		m.ScanIntervalOrDefault() != DefaultMirrorScanInterval || m.BatchDelayOrDefault() != DefaultMirrorBatchDelay {
		t.Errorf("defaults: %+v", m)
	}
	var nilMirror *Mirror
	if nilMirror.PortOrDefault() != DefaultMirrorPort || nilMirror.SecretFileOrDefault() != DefaultMirrorSecretFile {
		t.Error("nil mirror defaults")
	}
	p, err := Parse("web01.yaml", []byte(webNode+"mirror: {primary: web01, primary_address: 192.168.1.10}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Mirror.IsPrimary(p) || p.Mirror.PrimaryAddress != netip.MustParseAddr("192.168.1.10") {
		t.Errorf("primary: %+v", p.Mirror)
	}
}

func TestMirrorProblems(t *testing.T) {
	for _, tc := range []struct {
		name, base, mirror string
		line               int
		field, msg         string
	}{
		{"address not ipv4", replicaNode, "mirror: {primary: web01, primary_address: '::1'}\n", 6,
			"mirror.primary_address", "not an IPv4"},
		{"address loopback", replicaNode, "mirror: {primary: web01, primary_address: 127.0.0.1}\n", 6,
			"mirror.primary_address", "loopback"},
		{"address own on replica", replicaNode, "mirror: {primary: web01, primary_address: 192.168.1.11}\n", 6,
			"mirror.primary_address", "this replica's own address"},
		{"address not own on primary", webNode, "mirror: {primary: web01, primary_address: 192.168.1.99}\n", 8,
			"mirror.primary_address", "not an address of this node"},
		{"empty exclude", replicaNode, "mirror: {primary: web01, exclude: ['']}\n", 6,
			"mirror.exclude[0]", "empty pattern"},
		{"dotdot exclude", replicaNode, "mirror: {primary: web01, exclude: [a, '../etc']}\n", 6,
			"mirror.exclude[1]", `".." elements`},
		{"bad glob", replicaNode, "mirror: {primary: web01, exclude: ['a/[b']}\n", 6,
			"mirror.exclude[0]", "not a valid pattern"},
		{"double slash", replicaNode, "mirror: {primary: web01, exclude: ['a//b']}\n", 6,
			"mirror.exclude[0]", "empty element"},
		{"relative secret", replicaNode, "mirror: {primary: web01, secret_file: secret}\n", 6,
			"mirror.secret_file", "absolute path"},
		{"unclean secret", replicaNode, "mirror: {primary: web01, secret_file: /data/../secret}\n", 6,
			"mirror.secret_file", "not clean"},
		{"tls without key", replicaNode, "mirror: {primary: web01, tls: {ca: /data/ca.pem, cert: /data/c.pem}}\n", 6,
			"mirror.tls.key", "required"},
		{"tls and secret", replicaNode, "mirror: {primary: web01, secret_file: /data/s, tls: {ca: /data/a, cert: /data/b, key: /data/c}}\n", 6,
			"mirror.secret_file", "not both"},
		{"scan too often", replicaNode, "mirror: {primary: web01, scan_interval: 10ms}\n", 6,
			"mirror.scan_interval", "out of range"},
		{"negative batch", replicaNode, "mirror: {primary: web01, batch_delay: -1s}\n", 6,
			"mirror.batch_delay", "out of range"},
		{"unknown field", replicaNode, "mirror: {primary: web01, peers: [a]}\n", 6,
			"mirror.peers", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("n.yaml", []byte(tc.base+tc.mirror))
			if err == nil {
				t.Fatal("accepted")
			}
			wantProblem(t, err, "n.yaml", tc.line, tc.field, tc.msg)
		})
	}
}
