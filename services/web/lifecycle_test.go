package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunErrors(t *testing.T) {
	f := newFixture(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	certFile, keyFile, _ := writeCert(t, t.TempDir())
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o644)
	tests := []struct {
		name string
		set  func(*Config)
		want []string // in the error
	}{
		{"port in use", func(c *Config) { c.Listen = busy.Addr().String() },
			[]string{"web: listening on " + busy.Addr().String(), "address already in use"}},
		{"missing root", func(c *Config) { c.Root = filepath.Join(f.root, "nope") },
			[]string{"web: opening web root", "nope", "no such file or directory"}},
		{"root is a file", func(c *Config) { c.Root = filepath.Join(f.root, "small.txt") },
			[]string{"web: opening web root", "not a directory"}},
		{"missing certificate", func(c *Config) { c.TLSCert, c.TLSKey, c.TLSListen = certFile+".missing", keyFile, "127.0.0.1:0" },
			[]string{"web: loading TLS certificate", ".missing", "no such file"}},
		{"garbage certificate", func(c *Config) { c.TLSCert, c.TLSKey, c.TLSListen = garbage, keyFile, "127.0.0.1:0" },
			[]string{"web: loading TLS certificate", "garbage.pem"}},
		{"TLS port in use", func(c *Config) { c.TLSCert, c.TLSKey, c.TLSListen = certFile, keyFile, busy.Addr().String() },
			[]string{"web: listening on " + busy.Addr().String()}},
		{"access log file in a missing folder", func(c *Config) { c.AccessLogFile = "/nonexistent-dir/access.log" },
			[]string{"access log file", "/nonexistent-dir/access.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(f)
			tt.set(&cfg)
			s, err := NewServer(cfg, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Health(); err == nil || !strings.Contains(err.Error(), "not running") {
				t.Errorf("Health before Run: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = s.Run(ctx)
			if err == nil {
				t.Fatal("Run returned nil")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if h := s.Health(); h == nil || h.Error() != err.Error() {
				t.Errorf("Health = %v, want the Run error", h)
			}
			// Nothing was left listening.
			if s.Addr() != nil {
				t.Errorf("still listening on %v", s.Addr())
			}
		})
	}
}

func TestNewServerRefusesBadConfig(t *testing.T) {
	_, err := NewServer(Config{Root: "relative", Index: "a/b", HealthPath: "healthz"}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"web: Root:", "web: Index:", "web: HealthPath:"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// patterned returns n bytes that differ at every 8-byte position.
func patterned(n int, seed uint64) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i)*seed)
	}
	return b
}

// slowDownload starts GET path on a new connection and reads its first
// 1 MiB; the returned function reads the rest and returns the body.
func slowDownload(t *testing.T, addr, path string) func() ([]byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	return func() ([]byte, error) {
		rest, err := io.ReadAll(resp.Body)
		return append(first, rest...), err
	}
}

func TestReload(t *testing.T) {
	f := newFixture(t)
	huge := patterned(32<<20, 7)
	os.WriteFile(filepath.Join(f.root, "huge.bin"), huge, 0o644)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "index.html"), []byte("other root\n"), 0o644)
	cfg := baseConfig(f)
	r := startServer(t, cfg)
	addr := r.s.Addr().String()
	fr := r.plainFront()

	// A keep-alive connection, a download in flight and a new root.
	keep, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	exchange(t, keep, []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"GET"})
	rest := slowDownload(t, addr, "/huge.bin")

	cfg2 := cfg
	cfg2.Root = other
	if err := r.s.ReloadConfig(cfg2); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Health(); err != nil {
		t.Errorf("Health after reload: %v", err)
	}
	if resps := exchange(t, keep, []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"GET"}); bodyOf(resps[0]) != "other root\n" {
		t.Errorf("keep-alive connection after reload got the old root")
	}
	body, err := rest()
	if err != nil || sha256.Sum256(body) != sha256.Sum256(huge) {
		t.Errorf("download in flight: %d bytes, err %v", len(body), err)
	}

	// A refused reload keeps the old settings and shows in Health.
	cfg3 := cfg2
	cfg3.Root = filepath.Join(other, "missing")
	err = r.s.ReloadConfig(cfg3)
	if err == nil || !strings.Contains(err.Error(), "reload refused") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("reload with a missing root: %v", err)
	}
	if h := r.s.Health(); h == nil || h.Error() != err.Error() {
		t.Errorf("Health = %v", h)
	}
	if _, body := fr.do(t, "GET", "/", nil); string(body) != "other root\n" {
		t.Errorf("after a refused reload: %q", body)
	}
	if err := r.s.ReloadConfig(Config{Root: "relative"}); err == nil || !strings.Contains(r.s.Health().Error(), "Root") {
		t.Errorf("invalid config: %v, Health %v", err, r.s.Health())
	}
	// /healthz is about serving, which goes on.
	if resp, _ := fr.do(t, "GET", "/healthz", nil); resp.StatusCode != 200 {
		t.Errorf("/healthz %d after refused reloads", resp.StatusCode)
	}
	if err := r.s.ReloadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Health(); err != nil {
		t.Errorf("Health after a good reload: %v", err)
	}
	if _, body := fr.do(t, "GET", "/", nil); string(body) != indexHTML {
		t.Errorf("back to the first root: %q", body)
	}
}

func TestReloadListen(t *testing.T) {
	f := newFixture(t)
	cfg := baseConfig(f)
	r := startServer(t, cfg)
	oldAddr := r.s.Addr().String()
	keep, err := net.Dial("tcp", oldAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	exchange(t, keep, []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"GET"})

	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	cfgBusy := cfg
	cfgBusy.Listen = busy.Addr().String()
	if err := r.s.ReloadConfig(cfgBusy); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("reload to a busy port: %v", err)
	}
	if r.s.Addr().String() != oldAddr {
		t.Errorf("moved despite the error")
	}

	cfg2 := cfg
	cfg2.Listen = "127.0.0.2:0"
	if err := r.s.ReloadConfig(cfg2); err != nil {
		t.Fatal(err)
	}
	newAddr := r.s.Addr().String()
	if newAddr == oldAddr || !strings.HasPrefix(newAddr, "127.0.0.2:") {
		t.Fatalf("address %s after reload", newAddr)
	}
	resp, err := http.Get("http://" + newAddr + "/small.txt")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("new address: %v", err)
	}
	resp.Body.Close()
	// The idle connection of the old listener is closed; new ones are
	// refused.
	expectClosed(t, keep, 3*time.Second)
	if c, err := net.DialTimeout("tcp", oldAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("old address still accepts")
	}
}

func TestReloadTLS(t *testing.T) {
	f := newFixture(t)
	certFile, keyFile, pool := writeCert(t, t.TempDir())
	cfg := baseConfig(f)
	r := startServer(t, cfg)
	if r.s.TLSAddr() != nil {
		t.Fatal("TLS without certificate")
	}
	cfg2 := cfg
	cfg2.TLSCert, cfg2.TLSKey, cfg2.TLSListen = certFile, keyFile, "127.0.0.1:0"
	if err := r.s.ReloadConfig(cfg2); err != nil {
		t.Fatal(err)
	}
	if resp, body := r.tlsFront(pool).do(t, "GET", "/small.txt", nil); resp.ProtoMajor != 2 || string(body) != smallText {
		t.Errorf("HTTPS after reload: %s %q", resp.Proto, body)
	}
	cfg3 := cfg2
	cfg3.TLSKey = certFile // not a key
	if err := r.s.ReloadConfig(cfg3); err == nil || !strings.Contains(err.Error(), "loading TLS certificate") {
		t.Errorf("bad key: %v", err)
	}
	if err := r.s.ReloadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "HTTPS to stop", func() bool { return r.s.TLSAddr() == nil })
}

func TestReloadBeforeRun(t *testing.T) {
	f := newFixture(t)
	s, err := NewServer(Config{Root: "/nonexistent"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadConfig(baseConfig(f)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	resp, err := http.Get("http://" + s.Addr().String() + "/small.txt")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestGracefulStop(t *testing.T) {
	f := newFixture(t)
	huge := patterned(32<<20, 11)
	os.WriteFile(filepath.Join(f.root, "huge.bin"), huge, 0o644)
	r := startServer(t, baseConfig(f))
	addr := r.s.Addr().String()
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	exchange(t, idle, []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}, []string{"GET"})
	rest := slowDownload(t, addr, "/huge.bin")

	r.cancel()
	// The idle connection closes at once, the download goes on.
	expectClosed(t, idle, 3*time.Second)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("still accepting while stopping")
	}
	body, err := rest()
	if err != nil || sha256.Sum256(body) != sha256.Sum256(huge) {
		t.Errorf("download during stop: %d bytes, err %v", len(body), err)
	}
	r.stop(t)
	if err := r.s.Health(); err == nil {
		t.Error("healthy after stop")
	}
}

func TestGracePeriodExceeded(t *testing.T) {
	f := newFixture(t)
	writeHuge(t, f.root)
	cfg := baseConfig(f)
	cfg.GracePeriod = 300 * time.Millisecond
	r := startServer(t, cfg)
	stalledDownload(t, r.s.Addr().String())
	eventually(t, 5*time.Second, "the request to start", func() bool { return r.s.Stats().Conns == 1 })
	start := time.Now()
	r.stop(t)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v with a 300ms grace period", d)
	}
}

// TestRootGoneAndBack drives the once-a-second check by hand.
func TestRootGoneAndBack(t *testing.T) {
	f := newFixture(t)
	r := startServer(t, baseConfig(f))
	fr := r.plainFront()
	moved := f.root + ".moved"
	if err := os.Rename(f.root, moved); err != nil {
		t.Fatal(err)
	}
	r.s.check()
	if err := r.s.Health(); err == nil || !strings.Contains(err.Error(), "web root") {
		t.Errorf("Health with the root gone: %v", err)
	}
	if resp, _ := fr.do(t, "GET", "/healthz", nil); resp.StatusCode != 503 {
		t.Errorf("/healthz with the root gone: %d", resp.StatusCode)
	}
	// A new folder in its place (a new inode) is served from then on.
	os.MkdirAll(f.root, 0o755)
	os.WriteFile(filepath.Join(f.root, "index.html"), []byte("new folder\n"), 0o644)
	r.s.check()
	if err := r.s.Health(); err != nil {
		t.Errorf("Health with a new root: %v", err)
	}
	if _, body := fr.do(t, "GET", "/", nil); string(body) != "new folder\n" {
		t.Errorf("new root: %q", body)
	}
	if resp, _ := fr.do(t, "GET", "/healthz", nil); resp.StatusCode != 200 {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
}

func TestCertificateChange(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, dir)
	cfg := baseConfig(f)
	cfg.TLSCert, cfg.TLSKey, cfg.TLSListen = certFile, keyFile, "127.0.0.1:0"
	r := startServer(t, cfg)
	serial := func(pool interface{}) string {
		c, err := tls.Dial("tcp", r.s.TLSAddr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial(pool)
	// Broken files: the old certificate stays, Health says why.
	os.WriteFile(keyFile, []byte("broken"), 0o600)
	r.s.check()
	if err := r.s.Health(); err == nil || !strings.Contains(err.Error(), "loading TLS certificate") {
		t.Errorf("Health with a broken key: %v", err)
	}
	if serial(pool) != first {
		t.Error("certificate changed to a broken one")
	}
	writeCert(t, dir) // a new pair, same names
	r.s.check()
	if err := r.s.Health(); err != nil {
		t.Errorf("Health with the new certificate: %v", err)
	}
	if serial(pool) == first {
		t.Error("new certificate not served")
	}
}

func TestServeHTTPBeforeRun(t *testing.T) {
	s, _ := NewServer(Config{}, nil)
	req, _ := http.NewRequest("GET", "/", nil)
	req.RequestURI = "/"
	rec := &recorder{h: http.Header{}}
	s.ServeHTTP(rec, req)
	if rec.status != 503 {
		t.Errorf("status %d", rec.status)
	}
}

type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) WriteHeader(s int)           { r.status = s }
func (r *recorder) Write(p []byte) (int, error) { return r.body.Write(p) }
