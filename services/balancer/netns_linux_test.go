package balancer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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

// testNetns is a network namespace joined to the test's namespace by a
// veth pair, with hostAddr on our side and nsAddr inside (198.18.0.0/15,
// the benchmarking range, which no real network uses). It is deleted when
// the test ends.
type testNetns struct {
	name, hostIf, nsIf string
	hostAddr, nsAddr   string
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newTestNetns(t *testing.T) *testNetns {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	var rb [3]byte
	rand.Read(rb[:])
	id := hex.EncodeToString(rb[:])
	n := &testNetns{
		name: "piimg-bal-" + id, hostIf: "pbh" + id, nsIf: "pbn" + id,
		// A random /30 of 198.18.0.0/16, so parallel tests do not clash.
		hostAddr: fmt.Sprintf("198.18.%d.%d", rb[0], rb[1]&^3+1), nsAddr: fmt.Sprintf("198.18.%d.%d", rb[0], rb[1]&^3+2),
	}
	ip(t, "netns", "add", n.name)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", n.hostIf).Run()
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	ip(t, "link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf)
	ip(t, "link", "set", n.nsIf, "netns", n.name)
	ip(t, "addr", "add", n.hostAddr+"/30", "dev", n.hostIf)
	ip(t, "link", "set", n.hostIf, "up")
	ip(t, "-n", n.name, "addr", "add", n.nsAddr+"/30", "dev", n.nsIf)
	ip(t, "-n", n.name, "link", "set", n.nsIf, "up")
	ip(t, "-n", n.name, "link", "set", "lo", "up")
	return n
}

// listen opens a TCP listener inside the namespace. The socket stays
// there; serving it needs no namespace switch.
func (n *testNetns) listen(t *testing.T, port int) net.Listener {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + n.name)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatalf("entering %s: %v", n.name, err)
	}
	ln, lerr := net.Listen("tcp", net.JoinHostPort(n.nsAddr, fmt.Sprint(port)))
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		panic("cannot return to the test's network namespace: " + err.Error())
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	return ln
}

// TestNetnsBackendVanishes takes a backend's link down under load (its
// packets are dropped: connects and answers time out instead of being
// refused), then brings it back.
func TestNetnsBackendVanishes(t *testing.T) {
	ns := newTestNetns(t)
	remote := &testBackend{t: t, name: "remote"}
	ln := ns.listen(t, 8080)
	remote.addr = ln.Addr().String()
	srv := &http.Server{Handler: remote}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	local := newTestBackend(t, "local")
	const workers = 4
	bal, url := startBalancer(t, Config{
		// The local backend is the control: unchecked, so that a slow
		// machine (or the race detector) cannot take it down too.
		Backends:       []BackendConfig{{Name: "remote", Address: remote.addr}, {Name: "local", Address: local.addr, NoCheck: true}},
		Check:          CheckConfig{Interval: 100 * time.Millisecond, Timeout: 200 * time.Millisecond, Fall: 2, Rise: 2},
		ConnectTimeout: 300 * time.Millisecond,
		ServerTimeout:  time.Second,
		ErrorLimit:     2,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	l := startLoad(ctx, url, workers, 50000)
	rbe := bal.pool.Load().byName["remote"]
	waitFor(t, 3*time.Second, "the backend in the namespace to get requests", func() bool {
		return remote.hits.Load() > 10 && rbe.usable.Load()
	})
	ip(t, "-n", ns.name, "link", "set", ns.nsIf, "down")
	waitFor(t, 3*time.Second, "the vanished backend to be marked down", func() bool { return !rbe.usable.Load() })
	time.Sleep(1100 * time.Millisecond) // requests already sent to it time out
	failed := l.failed.Load()
	ip(t, "-n", ns.name, "link", "set", ns.nsIf, "up")
	waitFor(t, 3*time.Second, "the backend to come back", func() bool { return rbe.usable.Load() })
	hits := remote.hits.Load()
	time.Sleep(300 * time.Millisecond)
	cancel()
	l.wait()
	t.Logf("vanished backend: %d of %d requests failed", failed, l.ok.Load()+l.failed.Load())
	if failed > workers+2 {
		t.Errorf("%d requests failed (%d clients, error limit 2): %v", failed, workers, l.errs)
	}
	if l.failed.Load() != failed {
		t.Errorf("requests failed after the backend was marked down: %v", l.errs)
	}
	if remote.hits.Load() == hits {
		t.Error("the restored backend gets no requests")
	}
}

// TestNetnsPowerCutRedispatch takes a backend's link down under load with
// timeouts far longer than the clients wait: the requests caught on it
// (sent and unanswered, or still connecting) are moved to the other
// backend when its checks mark it down, and none fails.
func TestNetnsPowerCutRedispatch(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ns := newTestNetns(t)
			remote := &testBackend{t: t, name: "remote"}
			ln := ns.listen(t, 8080)
			remote.addr = ln.Addr().String()
			srv := &http.Server{Handler: remote}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			local := newTestBackend(t, "local")
			bal, url := startBalancer(t, Config{
				Backends:       []BackendConfig{{Name: "remote", Address: remote.addr}, {Name: "local", Address: local.addr, NoCheck: true}},
				Check:          CheckConfig{Interval: 100 * time.Millisecond, Timeout: 200 * time.Millisecond, Fall: 2, Rise: 2},
				ConnectTimeout: 20 * time.Second, // longer than the clients' 5 s:
				ServerTimeout:  20 * time.Second, // only a redispatch answers in time
				NoEventLoop:    e.noEventLoop,
			})
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			l := startLoad(ctx, url, 8, 50000)
			rbe := bal.pool.Load().byName["remote"]
			waitFor(t, 3*time.Second, "the backend in the namespace to get requests", func() bool {
				return remote.hits.Load() > 10 && rbe.usable.Load()
			})
			ip(t, "-n", ns.name, "link", "set", ns.nsIf, "down")
			waitFor(t, 3*time.Second, "the vanished backend to be marked down", func() bool { return !rbe.usable.Load() })
			time.Sleep(500 * time.Millisecond)
			cancel()
			l.wait() // with the link still down: nothing arrives late
			ip(t, "-n", ns.name, "link", "set", ns.nsIf, "up")
			waitFor(t, 3*time.Second, "the backend to come back", func() bool { return rbe.usable.Load() })
			t.Logf("power cut: %d of %d requests failed, %d redispatched", l.failed.Load(), l.ok.Load()+l.failed.Load(), rbe.redispatch.Load())
			if l.failed.Load() != 0 {
				t.Errorf("%d requests failed: %v", l.failed.Load(), l.errs)
			}
			if rbe.redispatch.Load() == 0 {
				t.Error("no request was redispatched")
			}
		})
	}
}
