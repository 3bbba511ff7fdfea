package boards

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

func TestDebianArch(t *testing.T) {
	for _, tc := range []struct {
		board Board
		want  string // "" means an error
	}{
		{all["pi2"], "armhf"},
		{all["pi3"], "arm64"},
		{all["pi4"], "arm64"},
		{Board{Name: "armv6", GOARCH: "arm", GOARM: "6"}, ""},
		{Board{Name: "pc", GOARCH: "amd64"}, ""},
	} {
		got, err := tc.board.DebianArch()
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%s: DebianArch() = %q, %v; want %q", tc.board.Name, got, err, tc.want)
		}
	}
}

// TestE2fsckPins checks that every supported board has a well-formed pin.
func TestE2fsckPins(t *testing.T) {
	hexSHA := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, name := range Names() {
		b := all[name]
		if !b.Supported {
			continue
		}
		p, err := b.E2fsckPackage()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		arch, _ := b.DebianArch()
		want := "pool/main/e/e2fsprogs/e2fsck-static_" + p.Version + "_" + arch + ".deb"
		if p.Name != "e2fsck-static" || p.Arch != arch || p.Filename != want || p.Size <= 0 || !hexSHA.MatchString(p.SHA256) {
			t.Errorf("%s: pin %+v; want e2fsck-static for %s at %s", name, p, arch, want)
		}
	}
}

// elfHeader returns a minimal little-endian ELF64 executable for machine,
// with a PT_INTERP program header when dynamic.
func elfHeader(machine uint16, dynamic bool) []byte {
	b := make([]byte, 64+56)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2) // ET_EXEC
	le.PutUint16(b[18:], machine)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], 64) // e_phoff
	le.PutUint16(b[52:], 64) // e_ehsize
	le.PutUint16(b[54:], 56) // e_phentsize
	le.PutUint16(b[56:], 1)  // e_phnum
	le.PutUint16(b[58:], 64) // e_shentsize
	typ := uint32(1)         // PT_LOAD
	if dynamic {
		typ = 3 // PT_INTERP
	}
	le.PutUint32(b[64:], typ)
	return b
}

func TestCheckStaticELF(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		data    []byte
		goarch  string
		wantErr string
	}{
		{"static arm64", elfHeader(183, false), "arm64", ""},
		{"wrong machine", elfHeader(183, false), "arm", "built for arm"},
		{"dynamic", elfHeader(183, true), "arm64", "dynamically linked"},
		{"not ELF", []byte("#!/bin/sh\n"), "arm64", "reading"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.WriteFile(p, tc.data, 0o755); err != nil {
			t.Fatal(err)
		}
		err := checkStaticELF(p, tc.goarch)
		if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: checkStaticELF = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// TestFetchE2fsck serves a fake e2fsck-static package from a loopback
// HTTP server: the program and the copyright file are unpacked, nothing
// else, and a second fetch needs no server.
func TestFetchE2fsck(t *testing.T) {
	prog := elfHeader(183, false)
	deb := fakeDeb(t, map[string][]byte{
		e2fsckBinary:                            prog,
		e2fsckCopyright:                         []byte("GPL-2\n"),
		"usr/share/man/man8/e2fsck.static.8.gz": []byte("man"),
	})
	sum := sha256.Sum256(deb)
	p := DebianPackage{Name: "e2fsck-static", Version: "1.0-1", Arch: "arm64",
		Filename: "pool/main/e/e2fsprogs/e2fsck-static_1.0-1_arm64.deb", Size: int64(len(deb)), SHA256: hex.EncodeToString(sum[:])}
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/debian/"+p.Filename {
			http.NotFound(w, r)
			return
		}
		w.Write(deb)
	}))
	defer srv.Close()
	src := DebianSource{Mirrors: []string{srv.URL + "/debian"}, CacheDir: t.TempDir()}
	e, err := fetchE2fsck(context.Background(), src, p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(e.Binary); err != nil || string(got) != string(prog) {
		t.Errorf("binary %s: %v", e.Binary, err)
	}
	if err := checkStaticELF(e.Binary, "arm64"); err != nil {
		t.Error(err)
	}
	if got, err := os.ReadFile(e.Copyright); err != nil || string(got) != "GPL-2\n" {
		t.Errorf("copyright %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(src.CacheDir, "debian", p.String(), "usr/share/man")); err == nil {
		t.Error("the cache keeps the manual page")
	}
	if e.Source != "e2fsck-static_1.0-1_arm64" {
		t.Errorf("Source = %q", e.Source)
	}
	srv.Close()
	n := hits.Load()
	if _, err := fetchE2fsck(context.Background(), src, p); err != nil {
		t.Fatalf("second fetch: %v", err)
	}
	if hits.Load() != n {
		t.Error("the second fetch downloaded again")
	}

	// A package without the program is refused.
	empty := fakeDeb(t, map[string][]byte{e2fsckCopyright: []byte("x")})
	sum = sha256.Sum256(empty)
	q := p
	q.Version, q.Size, q.SHA256 = "2.0-1", int64(len(empty)), hex.EncodeToString(sum[:])
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(empty) }))
	defer srv2.Close()
	_, err = fetchE2fsck(context.Background(), DebianSource{Mirrors: []string{srv2.URL}, CacheDir: t.TempDir()}, q)
	if err == nil || !strings.Contains(err.Error(), "has no "+e2fsckBinary) {
		t.Errorf("fetching a package without e2fsck = %v", err)
	}
}

// TestE2fsckStaticPackages fetches the pinned packages (from the cache,
// or once from apt's Debian mirror: about 650 kB each) and checks that
// each holds a static e2fsck for its boards.
func TestE2fsckStaticPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads the e2fsck-static packages when not cached")
	}
	for _, name := range []string{"pi2", "pi3"} {
		e, err := all[name].FetchE2fsck(context.Background(), DebianSource{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		st, err := os.Stat(e.Binary)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s, %d bytes", name, e.Source, st.Size())
	}
}
