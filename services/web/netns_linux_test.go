package web

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs fn on an OS thread that has joined the network namespace at
// nsPath; sockets fn creates stay in that namespace. The thread is never
// handed back to other goroutines if it cannot return to its namespace.
func inNetns(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering %s: %w", nsPath, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread ends with this goroutine.
			errc <- fmt.Errorf("leaving %s: %w", nsPath, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// TestNetns serves the web root in one network namespace and fetches it
// from another over a veth pair, as a balancer in front of a web node
// would. It needs root and ip(8).
func TestNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("ip(8) not installed")
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipCmd, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	srvNS, cliNS := "piimg-ws"+id, "piimg-wc"+id
	for _, ns := range []string{srvNS, cliNS} {
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command(ipCmd, "netns", "del", ns).Run() })
	}
	// The veth pair is created with its ends inside the namespaces:
	// nothing is added to the machine's own network.
	ip("-n", srvNS, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", cliNS)
	ip("-n", srvNS, "addr", "add", "10.251.0.1/24", "dev", "eth0")
	ip("-n", cliNS, "addr", "add", "10.251.0.2/24", "dev", "eth0")
	for _, ns := range []string{srvNS, cliNS} {
		ip("-n", ns, "link", "set", "lo", "up")
		ip("-n", ns, "link", "set", "eth0", "up")
	}

	f := newFixture(t)
	cfg := baseConfig(f)
	cfg.Listen = "10.251.0.1:80"
	cfg.ListenFunc = func(ctx context.Context, network, addr string) (ln net.Listener, err error) {
		err = inNetns("/var/run/netns/"+srvNS, func() error {
			ln, err = net.Listen(network, addr)
			return err
		})
		return ln, err
	}
	startServer(t, cfg)

	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableCompression: true,
			DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
				err = inNetns("/var/run/netns/"+cliNS, func() error {
					var d net.Dialer
					c, err = d.DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
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
		out, err := exec.Command(ipCmd, "netns", "exec", cliNS, curl, "-sS", "-m", "10", "http://10.251.0.1/whoami").CombinedOutput()
		if err != nil || string(out) != testHost+"\n" {
			t.Errorf("curl in %s: %v %q", cliNS, err, out)
		}
	}
}
