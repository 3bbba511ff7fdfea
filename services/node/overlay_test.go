package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/admin"
)

const goodOverlay = `hostname: node1
role: web
interfaces:
  eth0:
    address: 10.77.0.2/24
    gateway: 10.77.0.1
dns: [10.77.0.1, 10.77.0.53]
`

const otherGoodOverlay = `hostname: node2
role: web
interfaces:
  eth0:
    address: 10.77.0.3/24
`

const brokenOverlay = `hostname: node1
role: web
interfaces:
  eth0:
    address: 10.77.0.2/24
    gatway: 10.77.0.1
`

func TestLoadOverlay(t *testing.T) {
	tests := []struct {
		name         string
		primary      *string // nil: missing
		lastGood     *string
		wantHost     string
		wantSource   string
		wantReason   string // substring
		wantErr      string // substring
		wantLastGood string // content after loading; "" means missing
		wantNote     string // substring of loaded.lastGood
	}{
		{name: "good, no last good yet", primary: ptr(goodOverlay), wantHost: "node1", wantSource: admin.SourceBoot,
			wantLastGood: goodOverlay, wantNote: "saved as the last good copy"},
		{name: "good and equal to last good", primary: ptr(goodOverlay), lastGood: ptr(goodOverlay), wantHost: "node1",
			wantSource: admin.SourceBoot, wantLastGood: goodOverlay},
		{name: "good and newer than last good", primary: ptr(goodOverlay), lastGood: ptr(otherGoodOverlay), wantHost: "node1",
			wantSource: admin.SourceBoot, wantLastGood: goodOverlay, wantNote: "saved"},
		{name: "broken falls back", primary: ptr(brokenOverlay), lastGood: ptr(otherGoodOverlay), wantHost: "node2",
			wantSource: admin.SourceLastGood, wantReason: `interfaces.eth0.gatway: unknown field "gatway"`, wantLastGood: otherGoodOverlay},
		{name: "missing falls back", lastGood: ptr(otherGoodOverlay), wantHost: "node2",
			wantSource: admin.SourceLastGood, wantReason: "no such file or directory", wantLastGood: otherGoodOverlay},
		{name: "empty falls back", primary: ptr(""), lastGood: ptr(otherGoodOverlay), wantHost: "node2",
			wantSource: admin.SourceLastGood, wantReason: "file is empty", wantLastGood: otherGoodOverlay},
		{name: "both broken", primary: ptr(brokenOverlay), lastGood: ptr("hostname: [\n"),
			wantErr: "last good copy failed too", wantLastGood: "hostname: [\n"},
		{name: "broken, no last good", primary: ptr(brokenOverlay), wantErr: "gatway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			primary := filepath.Join(dir, "boot", "node.yaml")
			lastGood := filepath.Join(dir, "data", "piimage", "last-good.yaml")
			if tt.primary != nil {
				writeFile(t, primary, *tt.primary)
			}
			if tt.lastGood != nil {
				writeFile(t, lastGood, *tt.lastGood)
			}
			l, err := loadOverlay(primary, admin.SourceBoot, lastGood)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadOverlay error = %v, want one with %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("loadOverlay: %v", err)
			} else {
				if l.node.Hostname != tt.wantHost || l.info.Source != tt.wantSource {
					t.Errorf("loaded %s from %s, want %s from %s", l.node.Hostname, l.info.Source, tt.wantHost, tt.wantSource)
				}
				if !strings.Contains(l.info.FallbackReason, tt.wantReason) || (tt.wantReason == "") != (l.info.FallbackReason == "") {
					t.Errorf("fallback reason = %q, want %q", l.info.FallbackReason, tt.wantReason)
				}
				if !strings.Contains(l.lastGood, tt.wantNote) || (tt.wantNote == "") != (l.lastGood == "") {
					t.Errorf("last good note = %q, want %q", l.lastGood, tt.wantNote)
				}
			}
			got, _ := os.ReadFile(lastGood)
			if string(got) != tt.wantLastGood {
				t.Errorf("last good copy = %q, want %q", got, tt.wantLastGood)
			}
			entries, _ := os.ReadDir(filepath.Dir(lastGood))
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFileAtomicPerm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x", "last-good.yaml")
	if err := writeFileAtomic(path, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, []byte("b"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stat = %v, %v; want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "b" {
		t.Errorf("content = %q", b)
	}
}

func TestEtcFiles(t *testing.T) {
	n, err := overlays.Parse("node.yaml", []byte(goodOverlay))
	if err != nil {
		t.Fatal(err)
	}
	got := etcFiles(n)
	want := map[string]string{
		"hostname":    "node1\n",
		"hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.77.0.2\tnode1\n",
		"resolv.conf": "nameserver 10.77.0.1\nnameserver 10.77.0.53\n",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	n.DNS = nil
	if got := etcFiles(n)["resolv.conf"]; got != "# no dns servers in the overlay\n" {
		t.Errorf("resolv.conf without dns = %q", got)
	}
}

func TestReadRelease(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "release.json")
	writeFile(t, p, `{"version":"v1.2.3","board":"pi3","built":"2026-11-22T00:00:00Z","kernel":"6.12","firmware":"1.2"}`)
	r, err := readRelease(p)
	if err != nil || r.Version != "v1.2.3" || r.Board != "pi3" || r.Kernel != "6.12" {
		t.Errorf("readRelease = %+v, %v", r, err)
	}
	if r, err := readRelease(filepath.Join(dir, "missing.json")); err != nil || r != (admin.Release{}) {
		t.Errorf("readRelease(missing) = %+v, %v", r, err)
	}
	writeFile(t, p, `{"version":`)
	if _, err := readRelease(p); err == nil {
		t.Error("readRelease accepted broken JSON")
	}
}
