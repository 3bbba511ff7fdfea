package web

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fixture is a web root for tests, with a folder outside it that symbolic
// links point into.
type fixture struct {
	root, outside string
	big           []byte // big.bin, larger than MaxCachedFile
	cssGz         []byte // style.css.gz
}

const (
	smallText = "hello world\n"
	indexHTML = "<h1>index</h1>\n"
	aboutHTML = "<h1>about</h1>\n"
	page404   = "<h1>custom not found</h1>\n"
	styleCSS  = "body { color: red; }\n"
	testHost  = "testnode"
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{root: filepath.Join(dir, "www"), outside: filepath.Join(dir, "outside")}
	f.big = make([]byte, 300<<10)
	rand.Read(f.big)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat(styleCSS, 3)))
	zw.Close()
	f.cssGz = gz.Bytes()
	files := map[string][]byte{
		"index.html":                  []byte(indexHTML),
		"about/index.html":            []byte(aboutHTML),
		"docs/a.txt":                  []byte("a\n"),
		"docs/.hidden":                []byte("h\n"),
		"small.txt":                   []byte(smallText),
		"sp ace.txt":                  []byte("space\n"),
		"style.css":                   []byte(styleCSS),
		"style.css.gz":                f.cssGz,
		"app.js":                      []byte("let a = 1;\n"),
		"img.PNG":                     []byte("\x89PNG"),
		"data.json":                   []byte("{}\n"),
		"noext":                       []byte("x"),
		"empty.txt":                   nil,
		"big.bin":                     f.big,
		"static/x.txt":                []byte("static\n"),
		"404.html":                    []byte(page404),
		".secret":                     []byte("secret\n"),
		".git/config":                 []byte("[core]\n"),
		".well-known/acme.txt":        []byte("acme\n"),
		"../outside/secret.txt":       []byte("outside secret\n"),
		"../outside/dir/inner.txt":    []byte("outside inner\n"),
		"../outside/passwd-lookalike": []byte("root:x:0:0\n"),
	}
	for name, data := range files {
		p := filepath.Join(f.root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"link-in":       "small.txt",
		"link-in-dir":   "about",
		"link-out":      filepath.Join(f.outside, "secret.txt"),
		"link-out-rel":  "../outside/secret.txt",
		"dir-out":       filepath.Join(f.outside, "dir"),
		"about/up-link": "../small.txt",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(f.root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(f.root, "fifo"), 0o644); err != nil {
		t.Logf("no FIFO: %v", err)
	}
	return f
}

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// baseConfig is a config serving f on loopback ports chosen by the kernel.
func baseConfig(f *fixture) Config {
	return Config{
		Listen:    "127.0.0.1:0",
		Root:      f.root,
		Hostname:  testHost,
		AccessLog: io.Discard,
		CacheControl: []CacheRule{
			{Match: "*.css", Value: "public, max-age=60"},
			{Match: "/static/", Value: "max-age=3600"},
		},
	}
}

// running is a started server with clients for its fronts.
type running struct {
	s      *Server
	cancel context.CancelFunc
	errc   chan error
	pool   *x509.CertPool
}

// startServer runs a server with cfg until the test ends.
func startServer(t testing.TB, cfg Config) *running {
	t.Helper()
	s, err := NewServer(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-r.errc:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop stops the server and checks that Run returned nil.
func (r *running) stop(t testing.TB) {
	r.cancel()
	if r.errc == nil {
		return
	}
	select {
	case err := <-r.errc:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("Run did not return")
	}
	r.errc = nil
}

func (r *running) url(path string) string { return "http://" + r.s.Addr().String() + path }

// front is one way of talking to the server: plain HTTP/1.1 to the
// package's own loop, or HTTPS with HTTP/2 to net/http.
type front struct {
	name   string
	base   string
	client *http.Client
	dial   func() (net.Conn, error)
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func (r *running) plainFront() front {
	addr := r.s.Addr().String()
	return front{
		name:   "h1",
		base:   "http://" + addr,
		client: &http.Client{Transport: &http.Transport{DisableCompression: true}, CheckRedirect: noRedirect, Timeout: 10 * time.Second},
		dial:   func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) },
	}
}

func (r *running) tlsFront(pool *x509.CertPool) front {
	addr := r.s.TLSAddr().String()
	conf := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	return front{
		name: "h2",
		base: "https://" + addr,
		client: &http.Client{
			Transport:     &http.Transport{TLSClientConfig: conf, DisableCompression: true, ForceAttemptHTTP2: true},
			CheckRedirect: noRedirect,
			Timeout:       10 * time.Second,
		},
		dial: func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
		},
	}
}

// get sends one request and returns the answer with its body read.
func (f front) do(t testing.TB, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp, body
}

// raw sends req as is on a new connection and reads one answer.
func (f front) raw(t testing.TB, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := f.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading answer to %q: %v", req, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

// writeCert writes a self-signed certificate for localhost and 127.0.0.1
// into dir and returns the file names and a pool trusting it.
func writeCert(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 251, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// syncBuffer is a goroutine-safe bytes.Buffer for access logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually polls cond until it holds or the time is up.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeHuge puts huge.bin, 64 MiB of zeros, in root.
func writeHuge(t testing.TB, root string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, "huge.bin"), make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stalledDownload asks the server at addr for /huge.bin (see writeHuge) on
// a new connection with a 4 KiB receive buffer that is never read, so the
// server's writes soon block. The connection is closed when the test ends.
func stalledDownload(t testing.TB, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.(*net.TCPConn).SetReadBuffer(4096)
	io.WriteString(c, "GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
}

// expectClosed reads from c until the server closes it, and fails when
// that takes longer than within.
func expectClosed(t testing.TB, c net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(within))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after %v", within)
		}
		return time.Since(start)
	}
}
