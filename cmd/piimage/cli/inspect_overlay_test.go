package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piimage/piimage/overlays"
)

const secretLB = `hostname: lbmaster
role: lbmaster
interfaces:
  eth0: {address: 192.168.1.14/24, gateway: 192.168.1.1}
  wlan0:
    address: 192.168.2.14/24
    ssid: home
    psk: "correct horse battery"   # the Wi-Fi passphrase
vip: {router_id: 7, priority: 101, address: 192.168.1.15/24}
balancer:
  backends: [{name: web01, address: "192.168.1.10:80"}]
  stats: {port: 1936, user: admin, password_hash: "pbkdf2-sha256$100000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}
firewall: {vrrp_peers: [192.168.1.13]}
`

func TestRedactOverlay(t *testing.T) {
	const psk = "correct horse battery"
	tests := []struct {
		name, yaml string
		secrets    []string
	}{
		{"block and flow", secretLB, []string{psk, "pbkdf2-sha256$100000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "c2FsdHNhbHQ"}},
		{"plain block", strings.Replace(secretLB, `psk: "correct horse battery"`, "psk: correct horse battery", 1), []string{psk}},
		{"single quotes", strings.Replace(secretLB, `psk: "correct horse battery"`, "psk: 'correct horse battery'", 1), []string{psk}},
		{"escaped", strings.Replace(secretLB, `psk: "correct horse battery"`, `psk: "correct\x20horse battery"`, 1), []string{"horse battery", `correct\x20`}},
		{"flow psk", strings.Replace(secretLB, "  wlan0:\n    address: 192.168.2.14/24\n    ssid: home\n    psk: \"correct horse battery\"   # the Wi-Fi passphrase\n",
			"  wlan0: {address: 192.168.2.14/24, ssid: home, psk: 'correct horse battery'}\n", 1), []string{psk}},
		{"block scalar", strings.Replace(secretLB, `psk: "correct horse battery"   # the Wi-Fi passphrase`, "psk: >-\n      correct horse\n      battery", 1), []string{"correct horse", "battery"}},
		{"invalid overlay", "hostname: X\npsk: hunter2hunter2\nwlan0: {psk: \"s3cr3t-s3cr3t\", ssid: x}\n", []string{"hunter2hunter2", "s3cr3t-s3cr3t"}},
		{"quoted key", "hostname: X\n\"psk\": hunter2hunter2\nw: {'password_hash': s3cr3t-s3cr3t}\n", []string{"hunter2hunter2", "s3cr3t-s3cr3t"}},
		{"two on a line", "x: {psk: aaaaaaaaaa, password_hash: bbbbbbbbbb}\n", []string{"aaaaaaaaaa", "bbbbbbbbbb"}},
		{"pmk", strings.Replace(secretLB, `psk: "correct horse battery"`, "pmk: f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e", 1), []string{"f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _ := overlays.Parse("node.yaml", []byte(tt.yaml))
			out := redactOverlay([]byte(tt.yaml), n)
			for _, s := range tt.secrets {
				if strings.Contains(out, s) {
					t.Errorf("%q shows in\n%s", s, out)
				}
			}
			if !strings.Contains(out, mask) {
				t.Errorf("nothing masked:\n%s", out)
			}
			if strings.Contains(tt.yaml, "hostname:") && !strings.Contains(out, "hostname:") {
				t.Errorf("the rest of the overlay is gone:\n%s", out)
			}
		})
	}
}

func TestDescribeOverlay(t *testing.T) {
	var b bytes.Buffer
	describeOverlay(&b, []byte(secretLB))
	out := b.String()
	for _, want := range []string{
		"  | hostname: lbmaster",
		"psk: " + mask,
		"firewall (the nftables ruleset",
		"  table inet piimage {",
		`ip saddr 192.168.1.13 ip protocol vrrp counter name "vrrp" accept`,
		"tcp dport 1936 counter name \"public\" accept",
		"time servers (SNTP): 192.168.1.1:123",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"correct horse battery", "c2FsdHNhbHQ"} {
		if strings.Contains(out, secret) {
			t.Errorf("inspect shows the secret %q", secret)
		}
	}
}

// FuzzRedactOverlay: whatever the YAML, a parsed overlay's PSK and
// password hash never survive redaction.
func FuzzRedactOverlay(f *testing.F) {
	f.Add([]byte(secretLB))
	f.Add([]byte("hostname: a\nrole: web\ninterfaces:\n  eth0: {address: 10.0.0.2/24}\n  wlan0: {address: 10.0.1.2/24, ssid: s, psk: \"aaaa\\x41aaaa\"}\n"))
	f.Add([]byte("hostname: a\nrole: web\ninterfaces:\n  eth0: {address: 10.0.0.2/24}\n  wlan0:\n    address: 10.0.1.2/24\n    ssid: s\n    psk: |\n      abcdefghij\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := overlays.Parse("node.yaml", data)
		out := redactOverlay(data, n)
		if err != nil {
			return
		}
		var secrets []string
		if w := n.Interfaces.Wlan0; w != nil {
			secrets = append(secrets, w.PSK)
		}
		if n.Balancer != nil && n.Balancer.Stats != nil {
			secrets = append(secrets, n.Balancer.Stats.PasswordHash)
		}
		for _, s := range secrets {
			if len(strings.TrimSpace(s)) >= 8 && strings.Contains(out, strings.TrimSpace(s)) {
				t.Fatalf("secret %q survives:\n%s", s, out)
			}
		}
	})
}

// TestInspectImageMasksSecrets builds an image from an overlay holding a
// Wi-Fi PSK and a stats password hash, and checks that inspect shows the
// node's firewall and neither secret.
func TestInspectImageMasksSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image")
	}
	dir := t.TempDir()
	ov := filepath.Join(dir, "lb.yaml")
	if err := os.WriteFile(ov, []byte(secretLB), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "lb.img")
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"build", "--overlay", ov, "--out", img, "--src", srcTree}, &stdout, &stderr); err != nil {
		t.Fatalf("build: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"inspect", img}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"psk: " + mask, "password_hash: " + mask, "table inet piimage {", "tcp dport 80 notrack"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect lacks %q:\n%s", want, out.String())
		}
	}
	for _, secret := range []string{"correct horse battery", "c2FsdHNhbHQ", "aGFzaGhhc2hoYXNoaGFzaA"} {
		if strings.Contains(out.String()+stdout.String()+stderr.String(), secret) {
			t.Errorf("build or inspect output shows the secret %q", secret)
		}
	}
}
