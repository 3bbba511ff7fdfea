package mirror

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
)

// TestReaderNeverSeesMixedContent hammers a replica's file with reads
// while the primary replaces it over and over with versions that are
// each one byte value throughout (and of different sizes): any read that
// is not whole and uniform is a torn file.
func TestReaderNeverSeesMixedContent(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	version := func(i int) []byte { return bytes.Repeat([]byte{byte('A' + i%26)}, 200000+i*1000) }
	name := "page.html"
	writeFile(t, filepath.Join(prim, name), version(0), 0o644)
	_, addr := startPrimary(t, prim, Config{BatchDelay: time.Millisecond})
	r := startReplica(t, "web02", repl, addr, Config{})
	waitSame(t, prim, repl, r, 10*time.Second)

	var stop atomic.Bool
	var reads, torn atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				b, err := os.ReadFile(filepath.Join(repl, name))
				if err != nil {
					torn.Add(1) // the file must always exist
					continue
				}
				reads.Add(1)
				// Whole: one letter throughout, and the length that goes
				// with that letter.
				if len(b) < 200000 || (len(b)-200000)%1000 != 0 || bytes.Count(b, b[:1]) != len(b) ||
					(len(b)-200000)/1000%26 != int(b[0]-'A') {
					torn.Add(1)
				}
			}
		}()
	}
	last := 0
	for i := 1; i <= 40; i++ {
		// Write on the primary the way an editor does: temp and rename,
		// so the primary itself never shows a torn file.
		tmp := filepath.Join(prim, ".edit.tmp")
		os.WriteFile(tmp, version(i), 0o644)
		os.Rename(tmp, filepath.Join(prim, name))
		last = i
		time.Sleep(3 * time.Millisecond)
	}
	want := version(last)
	ok := waitFor(10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(repl, name))
		return bytes.Equal(b, want)
	})
	stop.Store(true)
	wg.Wait()
	if !ok {
		t.Fatal("the last version never arrived")
	}
	if torn.Load() != 0 {
		t.Errorf("%d of %d reads saw a missing or torn file", torn.Load(), reads.Load())
	}
	t.Logf("%d reads, none torn", reads.Load())
}

// TestExcludesAndBurst: excluded paths are neither copied nor deleted,
// and a burst of changes converges.
func TestExcludesAndBurst(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	ex := []string{"**/stats", "**/files/pictures", "*.log"}
	writeFile(t, filepath.Join(prim, "stats/index.html"), []byte("primary stats"), 0o644)
	writeFile(t, filepath.Join(prim, "site/files/pictures/cat.jpg"), []byte("cat"), 0o644)
	writeFile(t, filepath.Join(prim, "site/access.log"), []byte("log"), 0o644)
	writeFile(t, filepath.Join(prim, "site/index.html"), []byte("home"), 0o644)
	writeFile(t, filepath.Join(repl, "stats/local.html"), []byte("replica's own stats"), 0o644)
	_, addr := startPrimary(t, prim, Config{Excludes: ex})
	r := startReplica(t, "web02", repl, addr, Config{Excludes: ex})
	skip := func(rel string) bool {
		e, _ := newExcluder(ex)
		return e.excluded(rel, true) || e.excluded(rel, false)
	}
	waitFor(10*time.Second, func() bool { return treeDiff(prim, repl, skip) == "" && r.svc.Status().Self.InSync })
	if d := treeDiff(prim, repl, skip); d != "" {
		t.Fatal(d)
	}
	if _, err := os.Stat(filepath.Join(repl, "site/files/pictures")); err == nil {
		t.Error("an excluded folder was copied")
	}
	if b, _ := os.ReadFile(filepath.Join(repl, "stats/local.html")); string(b) != "replica's own stats" {
		t.Error("an excluded path was deleted on the replica")
	}

	start := time.Now()
	for i := range 500 {
		writeFile(t, filepath.Join(prim, "burst", fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%03d.html", i)), fmt.Appendf(nil, "file %d", i), 0o644)
		writeFile(t, filepath.Join(prim, "burst/stats", fmt.Sprintf("s%03d", i)), []byte("x"), 0o644)
	}
	if !waitFor(20*time.Second, func() bool { return treeDiff(prim, repl, skip) == "" }) {
		t.Fatal(treeDiff(prim, repl, skip))
	}
	t.Logf("500 files converged %v after the first write", time.Since(start).Round(time.Millisecond))
	// Folder mtimes follow once the replica is idle.
	if !waitFor(5*time.Second, func() bool {
		a, _ := os.Stat(filepath.Join(prim, "burst/d3"))
		b, _ := os.Stat(filepath.Join(repl, "burst/d3"))
		return a != nil && b != nil && a.ModTime().Equal(b.ModTime())
	}) {
		t.Error("folder mtime not restored")
	}
}

// TestConfigFromNode builds the service from an overlay, with the
// secret on the data partition or certificate files.
func TestConfigFromNode(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, append(testSecret, '\n'), 0o600)
	node := &overlays.Node{Hostname: "web02", Role: overlays.RoleWeb,
		Web: &overlays.Web{Root: filepath.Join(dir, "www")},
		Mirror: &overlays.Mirror{Primary: "web01", PrimaryAddress: netip.MustParseAddr("192.168.1.10"), Port: 9999,
			Exclude: []string{"**/stats"}, SecretFile: secret}}
	c, err := ConfigFromNode(node)
	if err != nil {
		t.Fatal(err)
	}
	if c.Primary != "192.168.1.10:9999" || c.PrimaryName != "web01" || c.Root != filepath.Join(dir, "www") || len(c.Excludes) != 1 || c.Identity == nil {
		t.Errorf("config %+v", c)
	}
	if _, err := New(node, testLog(t)); err != nil {
		t.Errorf("New: %v", err)
	}

	// A missing secret: the service waits for it, and Health says what
	// is missing and how to provision it.
	missing := filepath.Join(dir, "missing")
	node.Mirror.SecretFile = missing
	node.Mirror.PrimaryAddress = netip.MustParseAddr("127.0.0.1")
	node.Mirror.Port = closedPort(t)
	svc, err := New(node, testLog(t))
	if err != nil {
		t.Fatalf("New without the secret: %v", err)
	}
	herr := svc.Health()
	if herr == nil || !strings.Contains(herr.Error(), missing) || !strings.Contains(herr.Error(), "MirrorSecret") {
		t.Errorf("Health without the secret: %v", herr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	os.WriteFile(missing, append(testSecret, '\n'), 0o600)
	if !waitFor(3*secretPoll, func() bool { err := svc.Health(); return err != nil && !strings.Contains(err.Error(), missing) }) {
		t.Errorf("the mirror did not start once the secret appeared: %v", svc.Health())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	os.WriteFile(filepath.Join(dir, "short"), []byte("short\n"), 0o600)
	node.Mirror.SecretFile = filepath.Join(dir, "short")
	if _, err := New(node, testLog(t)); err == nil {
		t.Error("a short secret was accepted")
	}

	// Certificate files, e.g. made at build time.
	ca, caKey := makeCA(t)
	node.Mirror.SecretFile = ""
	node.Mirror.TLS = writeNodeCert(t, dir, ca, caKey, "web02")
	c, err = ConfigFromNode(node)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Identity.check(); err != nil {
		t.Error(err)
	}

	node.Mirror = nil
	if _, err := New(node, testLog(t)); err == nil {
		t.Error("a node without a mirror section was accepted")
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestIdentityFromFiles runs a session with file-based identities.
func TestIdentityFromFiles(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCA(t)
	load := func(name string) *Identity {
		f := writeNodeCert(t, dir, ca, caKey, name)
		id, err := LoadIdentity(f.CA, f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	prim, repl := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(prim, "x.html"), []byte("x"), 0o644)
	_, addr := startPrimary(t, prim, Config{Identity: load("web01")})
	r := startReplica(t, "web02", repl, addr, Config{Identity: load("web02")})
	waitSame(t, prim, repl, r, 10*time.Second)
}

func makeCA(t *testing.T) (*x509.Certificate, ed25519.PrivateKey) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

func writeNodeCert(t *testing.T, dir string, ca *x509.Certificate, caKey ed25519.PrivateKey, name string) *overlays.MirrorTLS {
	id, err := issue(ca, caKey, name)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(id.Cert.PrivateKey)
	f := &overlays.MirrorTLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+".key")}
	os.WriteFile(f.CA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644)
	os.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.Cert.Certificate[0]}), 0o644)
	os.WriteFile(f.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return f
}

// TestReload switches a replica to excluding a folder.
func TestReload(t *testing.T) {
	prim, repl := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(prim, "a/x.html"), []byte("x"), 0o644)
	_, addr := startPrimary(t, prim, Config{})
	cfg := Config{Name: "web02", Root: repl, Primary: addr, PrimaryName: "web01", Identity: testIdentity(t, "web02"),
		Heartbeat: 200 * time.Millisecond, NoFsync: true}
	r := startNode(t, cfg)
	waitSame(t, prim, repl, r, 10*time.Second)
	cfg.Excludes = []string{"/b"}
	if err := r.svc.ReloadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	bad := cfg
	bad.Excludes = []string{"[x"}
	if err := r.svc.ReloadConfig(bad); err == nil {
		t.Error("a bad pattern was accepted on reload")
	}
	writeFile(t, filepath.Join(repl, "b/own.html"), []byte("mine"), 0o644)
	writeFile(t, filepath.Join(prim, "c.html"), []byte("c"), 0o644)
	if !waitFor(10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(repl, "c.html"))
		return err == nil
	}) {
		t.Fatal("no sync after the reload")
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(repl, "b/own.html")); err != nil {
		t.Error("the newly excluded folder was deleted")
	}
}
