package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/piimage/piimage/internal/netnstest"
)

// TestNetns serves the web root in one network namespace and fetches it
// from another over a veth pair, as a balancer in front of a web node
// would. It needs root and ip(8).
func TestNetns(t *testing.T) {
	srvNS, cliNS := netnstest.New(t, "ws"), netnstest.New(t, "wc")
	// The veth pair is created with its ends inside the namespaces:
	// nothing is added to the machine's own network.
	netnstest.Veth(t, netnstest.End{NS: srvNS, Name: "eth0", Addr: "10.251.0.1/24"},
		netnstest.End{NS: cliNS, Name: "eth0", Addr: "10.251.0.2/24"})

	f := newFixture(t)
	cfg := baseConfig(f)
	cfg.Listen = "10.251.0.1:80"
	cfg.ListenFunc = func(ctx context.Context, network, addr string) (net.Listener, error) {
		return srvNS.Listen(network, addr)
	}
	startServer(t, cfg)

	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableCompression: true,
			DialContext:        cliNS.DialContext,
		},
	}
	// Idle connections would keep the client namespace alive.
	t.Cleanup(client.CloseIdleConnections)
	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://10.251.0.1"+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get("/whoami"); resp.StatusCode != 200 || body != testHost+"\n" {
		t.Errorf("whoami: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	if _, body := get("/"); body != indexHTML {
		t.Errorf("index: %q", body)
	}
	if resp, body := get("/big.bin", "Range", "bytes=10-19"); resp.StatusCode != 206 || body != string(f.big[10:20]) {
		t.Errorf("range: %d", resp.StatusCode)
	}
	if resp, body := get("/big.bin"); resp.StatusCode != 200 || body != string(f.big) {
		t.Errorf("big file: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := get("/nope"); resp.StatusCode != 404 {
		t.Errorf("missing: %d", resp.StatusCode)
	}

	// curl from the client namespace, when installed.
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := cliNS.Command(curl, "-sS", "-m", "10", "http://10.251.0.1/whoami").CombinedOutput()
		if err != nil || string(out) != testHost+"\n" {
			t.Errorf("curl in %s: %v %q", cliNS.Name, err, out)
		}
	}
}
