package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
)

func testNode(web *overlays.Web) *overlays.Node {
	return &overlays.Node{
		Hostname: "web01",
		Role:     overlays.RoleWeb,
		Interfaces: overlays.Interfaces{
			Eth0: &overlays.Interface{Address: netip.MustParsePrefix("192.168.1.10/24")},
		},
		Web: web,
	}
}

func TestConfigFromNode(t *testing.T) {
	tests := []struct {
		name string
		web  *overlays.Web
		want Config
	}{
		{"no web section", nil, Config{Listen: "192.168.1.10:80", Root: "/data/www", Hostname: "web01"}},
		{"all addresses", &overlays.Web{Listen: netip.IPv4Unspecified(), Port: 8080},
			Config{Listen: ":8080", Root: "/data/www", Hostname: "web01"}},
		{"everything", &overlays.Web{
			Port: 81, Listen: netip.MustParseAddr("192.168.1.10"), Root: "/data/site", Index: "home.html",
			Listing: true, ShowDotfiles: true, SymlinksOutsideRoot: true, NotFoundPage: "/nf.html",
			WhoAmIPath: "/who", HealthPath: "off",
			CacheControl: []overlays.WebCacheRule{{Match: "*.css", Value: "max-age=60"}},
			MimeTypes:    map[string]string{".md": "text/markdown"},
			AccessLog:    &overlays.WebAccessLog{Off: true, File: "/data/log/access.log"},
			TLS:          &overlays.WebTLS{Cert: "/data/tls/cert.pem", Key: "/data/tls/key.pem"},
			Timeouts: overlays.WebTimeouts{ReadHeader: overlays.Duration{Duration: 5 * time.Second},
				Idle: overlays.Duration{Duration: 30 * time.Second}, Write: overlays.Duration{Duration: time.Minute}},
			MaxHeaderBytes: 4096,
		}, Config{
			Listen: "192.168.1.10:81", Root: "/data/site", Index: "home.html", Listing: true, ShowDotfiles: true,
			SymlinksOutsideRoot: true, NotFoundPage: "/nf.html", WhoAmIPath: "/who", HealthPath: "off", Hostname: "web01",
			CacheControl: []CacheRule{{Match: "*.css", Value: "max-age=60"}},
			MimeTypes:    map[string]string{".md": "text/markdown"},
			NoAccessLog:  true, AccessLogFile: "/data/log/access.log",
			TLSCert: "/data/tls/cert.pem", TLSKey: "/data/tls/key.pem", TLSListen: "192.168.1.10:443",
			ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 30 * time.Second, WriteTimeout: time.Minute,
			MaxHeaderBytes: 4096, MaxURIBytes: 2048,
		}},
	}
	for _, tt := range tests {
		n := testNode(tt.web)
		if err := n.Validate(); err != nil {
			t.Fatalf("%s: overlay invalid: %v", tt.name, err)
		}
		got, err := ConfigFromNode(n)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
	if _, err := ConfigFromNode(nil); err == nil {
		t.Error("nil node accepted")
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestFactoryAndReload runs the service through the contract the
// supervisor uses: New, Run, Reload with a changed overlay, Health.
func TestFactoryAndReload(t *testing.T) {
	f := newFixture(t)
	n := testNode(&overlays.Web{Root: f.root, Port: freePort(t)})
	n.Interfaces.Eth0.Address = netip.MustParsePrefix("127.0.0.1/8")
	svc, err := New(n, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s := svc.(*Server)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if err := svc.Health(); err != nil {
		t.Fatalf("Health: %v", err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/whoami"); code != 200 || body != "web01\n" {
		t.Errorf("whoami: %d %q", code, body)
	}
	n2 := *n
	w2 := *n.Web
	w2.WhoAmIPath = "/who"
	n2.Web = &w2
	n2.Hostname = "web01b"
	if err := svc.Reload(&n2); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/who"); code != 200 || body != "web01b\n" {
		t.Errorf("after reload: %d %q", code, body)
	}
	n3 := n2
	w3 := w2
	w3.Root = f.root + "/missing"
	n3.Web = &w3
	if err := svc.Reload(&n3); err == nil || svc.Health() == nil {
		t.Errorf("reload to a missing root: %v, Health %v", err, svc.Health())
	}
}
