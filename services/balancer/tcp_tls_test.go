package balancer

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tcpBackend answers each line with "name: line"; with proxy it first
// reads a PROXY v2 header and stores it.
type tcpBackend struct {
	name  string
	ln    net.Listener
	proxy bool
	last  atomic.Pointer[proxyV2Header]
}

func newTCPBackend(t *testing.T, name string, proxy bool) *tcpBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tb := &tcpBackend{name: name, ln: ln, proxy: proxy}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				if tb.proxy {
					b, err := br.Peek(16)
					if err != nil {
						return
					}
					n := 16 + int(b[14])<<8 | int(b[15])
					b, err = br.Peek(n)
					if err != nil {
						return
					}
					h, _, err := parseProxyV2(b)
					if err != nil {
						return
					}
					br.Discard(n)
					tb.last.Store(&h)
				}
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, tb.name+": "+line)
				}
			}()
		}
	}()
	return tb
}

func (tb *tcpBackend) addr() string { return tb.ln.Addr().String() }

func tcpRoundTrip(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(c, msg+"\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(line)
}

func TestTCPMode(t *testing.T) {
	a, b := newTCPBackend(t, "a", false), newTCPBackend(t, "b", false)
	deadAddr := refusingAddr(t)
	bal, _ := startBalancer(t, Config{Mode: ModeTCP, Backends: []BackendConfig{
		{Name: "a", Address: a.addr()}, {Name: "dead", Address: deadAddr}, {Name: "b", Address: b.addr()},
	}, Check: CheckConfig{Interval: time.Hour}})
	seen := map[string]int{}
	for i := range 12 {
		got := tcpRoundTrip(t, bal.Addr().String(), "hello")
		name, rest, _ := strings.Cut(got, ": ")
		if rest != "hello" {
			t.Fatalf("connection %d: %q", i, got)
		}
		seen[name]++
	}
	if seen["a"] == 0 || seen["b"] == 0 || seen["a"]+seen["b"] != 12 {
		t.Errorf("spread %v", seen)
	}
	if d := bal.pool.Load().byName["dead"]; d.retries.Load() == 0 {
		t.Error("the dead backend was never tried and retried")
	}
}

func TestTCPSourceAndProxyV2(t *testing.T) {
	a, b := newTCPBackend(t, "a", true), newTCPBackend(t, "b", true)
	bal, _ := startBalancer(t, Config{Mode: ModeTCP, Algorithm: "source", SendProxyV2: true,
		Backends: []BackendConfig{{Name: "a", Address: a.addr()}, {Name: "b", Address: b.addr()}}})
	first := tcpRoundTrip(t, bal.Addr().String(), "x")
	for range 5 {
		if got := tcpRoundTrip(t, bal.Addr().String(), "x"); got != first {
			t.Fatalf("source hashing moved the client: %q then %q", first, got)
		}
	}
	tb := a
	if strings.HasPrefix(first, "b") {
		tb = b
	}
	h := tb.last.Load()
	if h == nil || h.Local || h.Src.Addr().String() != "127.0.0.1" || h.Dst.String() != bal.Addr().String() {
		t.Errorf("PROXY header %+v, want from 127.0.0.1 to %s", h, bal.Addr())
	}
}

func TestHTTPProxyV2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan proxyV2Header, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				b, err := br.Peek(28)
				if err != nil {
					return
				}
				h, n, err := parseProxyV2(b)
				if err != nil {
					return
				}
				br.Discard(n)
				got <- h
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	bal, url := startBalancer(t, Config{SendProxyV2: true, Backends: []BackendConfig{{Name: "p", Address: ln.Addr().String(), NoCheck: true}}})
	c := &http.Client{}
	for range 3 {
		if code, body, _ := get(t, c, url); code != 200 || body != "ok" {
			t.Fatalf("%d %q", code, body)
		}
	}
	h := <-got
	if h.Local || h.Src.Addr().String() != "127.0.0.1" || h.Dst.String() != bal.Addr().String() {
		t.Errorf("PROXY header %+v", h)
	}
	if len(got) != 0 {
		t.Errorf("%d more backend connections for one keep-alive client", len(got))
	}
}

// writeCert makes a self-signed certificate for name in dir.
func writeCert(t *testing.T, dir, name string) (CertFiles, *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	f := CertFiles{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+".key")}
	os.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(f.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return f, cert
}

func TestTLSTerminationSNIAndHTTP2(t *testing.T) {
	dir := t.TempDir()
	fa, ca := writeCert(t, dir, "a.example")
	fb, cb := writeCert(t, dir, "b.example")
	be := newTestBackend(t, "web")
	bal, _ := startBalancer(t, Config{Backends: backendConfigs(be), TLS: &TLSConfig{Addr: "127.0.0.1:0", Certs: []CertFiles{fa, fb}}})
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	roots.AddCert(cb)
	for _, tt := range []struct {
		sni  string
		want *x509.Certificate
	}{{"a.example", ca}, {"b.example", cb}, {"other.example", ca}} {
		conn, err := tls.Dial("tcp", bal.TLSAddr().String(), &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		got := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if !got.Equal(tt.want) {
			t.Errorf("SNI %s: got the certificate of %v", tt.sni, got.DNSNames)
		}
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "b.example"},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + bal.TLSAddr().String() + "/tls")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || !strings.HasPrefix(string(body), "web /tls") {
		t.Errorf("got %s %q, want HTTP/2 from the backend", resp.Proto, body)
	}
	r := be.last.Load()
	if r.Header.Get("X-Forwarded-Proto") != "https" || r.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("forwarded headers %v", r.Header)
	}
	if r.ProtoMajor != 1 {
		t.Errorf("backend got %s, want HTTP/1.1", r.Proto)
	}

	// HTTP/1.1 over TLS goes through the HTTP/1 engine.
	tr1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "a.example", NextProtos: []string{"http/1.1"}}}
	defer tr1.CloseIdleConnections()
	resp, err = (&http.Client{Transport: tr1}).Get("https://" + bal.TLSAddr().String() + "/h1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 1 || !strings.HasPrefix(string(body), "web /h1") {
		t.Errorf("got %s %q", resp.Proto, body)
	}
	if r := be.last.Load(); r.Header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("X-Forwarded-Proto %q over TLS", r.Header.Get("X-Forwarded-Proto"))
	}
	conn, err := tls.Dial("tcp", bal.TLSAddr().String(), &tls.Config{RootCAs: roots, ServerName: "a.example", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("smuggling over TLS: %q", line)
	}
}

// TestHTTP2Path: HTTP/2 clients get the same retries, persistence and
// 503 page as HTTP/1 ones.
func TestHTTP2Path(t *testing.T) {
	dir := t.TempDir()
	fa, ca := writeCert(t, dir, "a.example")
	a := newTestBackend(t, "a")
	dead := deadBackend(t, "dead")
	bal, _ := startBalancer(t, Config{
		Backends: []BackendConfig{{Name: "dead", Address: dead.addr}, {Name: "a", Address: a.addr}},
		Cookie:   &CookieConfig{},
		Check:    CheckConfig{Interval: time.Hour},
		TLS:      &TLSConfig{Addr: "127.0.0.1:0", Certs: []CertFiles{fa}},
	})
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "a.example"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	url := "https://" + bal.TLSAddr().String() + "/"
	for i := range 4 {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "a" {
			t.Fatalf("request %d: %s %d from %q", i, resp.Proto, resp.StatusCode, resp.Header.Get("X-Backend"))
		}
		if sc := resp.Header.Get("Set-Cookie"); sc != "SERVERID=a; Path=/; HttpOnly" {
			t.Errorf("Set-Cookie %q", sc)
		}
	}
	if d := bal.pool.Load().byName["dead"]; d.retries.Load() == 0 {
		t.Error("no retry recorded for the dead backend")
	}
	for range 5 {
		bal.observeCheck(bal.pool.Load().byName["a"], false, "", 0)
		bal.observeCheck(bal.pool.Load().byName["dead"], false, "", 0)
	}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "No server is available") {
		t.Errorf("all down over HTTP/2: %d %q", resp.StatusCode, body)
	}
}

// TestTCPReloadKeepsConnections: removing a backend leaves its open TCP
// connections working; new ones go elsewhere.
func TestTCPReloadKeepsConnections(t *testing.T) {
	a, b := newTCPBackend(t, "a", false), newTCPBackend(t, "b", false)
	cfg := Config{Mode: ModeTCP, Backends: []BackendConfig{{Name: "a", Address: a.addr()}}}
	bal, _ := startBalancer(t, cfg)
	c, err := net.Dial("tcp", bal.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	say := func(msg string) string {
		io.WriteString(c, msg+"\n")
		line, err := br.ReadString('\n')
		if err != nil {
			return err.Error()
		}
		return strings.TrimSpace(line)
	}
	if got := say("one"); got != "a: one" {
		t.Fatalf("before: %q", got)
	}
	cfg.Backends = []BackendConfig{{Name: "b", Address: b.addr()}}
	if err := bal.ReloadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if got := say("two"); got != "a: two" {
		t.Errorf("an open connection after its backend was removed: %q", got)
	}
	if got := tcpRoundTrip(t, bal.Addr().String(), "new"); got != "b: new" {
		t.Errorf("a new connection: %q", got)
	}
}
