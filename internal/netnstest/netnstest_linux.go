package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ipTimeout bounds every ip(8) command the package runs.
const ipTimeout = 10 * time.Second

// Require skips t unless it runs as root with ip(8) installed.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) (Debian package iproute2)")
	}
}

// NS is a named network namespace that the test deletes when it ends.
type NS struct {
	// Name is the namespace's name for ip netns.
	Name string
	t    testing.TB
}

// New creates the namespace piimg-TAG-XXXXXX (six random hex digits)
// with its loopback up, and deletes it when the test ends. It skips the
// test without root or ip(8), or when the kernel refuses a namespace.
func New(t testing.TB, tag string) *NS {
	t.Helper()
	return newNamed(t, "piimg-"+tag+"-"+randomHex(t))
}

// NewBare is New but leaves the namespace as the kernel made it: lo is
// down and unaddressed, for code under test that brings up its own
// loopback.
func NewBare(t testing.TB, tag string) *NS {
	t.Helper()
	return addNamed(t, "piimg-"+tag+"-"+randomHex(t))
}

// newNamed creates the namespace name with lo up.
func newNamed(t testing.TB, name string) *NS {
	t.Helper()
	n := addNamed(t, name)
	n.IP("link", "set", "lo", "up")
	return n
}

// addNamed creates the namespace name, untouched, and deletes it when
// the test ends.
func addNamed(t testing.TB, name string) *NS {
	t.Helper()
	Require(t)
	if out, err := ipRun("netns", "add", name); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := ipRun("netns", "del", name); err != nil {
			t.Errorf("deleting network namespace %s: %v: %s", name, err, out)
		}
	})
	return &NS{Name: name, t: t}
}

// Path returns the namespace's file, /run/netns/NAME, for setns(2) or
// anything else that takes a namespace descriptor.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// IP runs `ip -n NAME args...` and fails the test if it fails.
func (n *NS) IP(args ...string) {
	n.t.Helper()
	ip(n.t, append([]string{"-n", n.Name}, args...)...)
}

// Command returns a command that runs name with args inside the
// namespace (through ip netns exec).
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Do runs fn on an OS thread of its own that has joined the namespace,
// and returns fn's error. Sockets fn makes stay in the namespace. The
// thread goes back to its namespace afterwards; if it cannot, it is never
// handed to other goroutines but ends with the one Do started.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		sent := false
		defer func() {
			if !sent {
				errc <- fmt.Errorf("in namespace %s: the function did not return (t.FailNow inside Do?)", n.Name)
			}
		}()
		runtime.LockOSThread()
		err := enterAndRun(n.Path(), fn)
		if !errors.Is(err, errStuck) {
			runtime.UnlockOSThread()
		}
		sent = true
		errc <- err
	}()
	return <-errc
}

// errStuck marks a thread that could not return to its namespace.
var errStuck = errors.New("cannot return to the original network namespace")

// enterAndRun runs fn with the calling (locked) thread inside the
// namespace at path.
func enterAndRun(path string, fn func() error) error {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("opening this thread's network namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening network namespace: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering %s: %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("leaving %s: %w: %w", path, errStuck, err)
	}
	return ferr
}

// Listen opens a listener (as net.Listen) whose socket is made inside the
// namespace; serving it needs no switch.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// DialContext connects (as net.Dialer.DialContext) from inside the
// namespace. It fits http.Transport.DialContext.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}

// End is one end of a veth pair.
type End struct {
	// NS is the end's namespace; nil is the test's own namespace.
	NS *NS
	// Name is the interface name (at most 15 bytes).
	Name string
	// Addr, as "10.1.2.3/24", is set on the end and the link brought up;
	// without it the end is left down and unaddressed.
	Addr string
}

// Veth creates a veth pair between a and b (at most one of them in the
// test's own namespace), and deletes it when the test ends, before the
// namespaces go.
func Veth(t testing.TB, a, b End) {
	t.Helper()
	Require(t)
	if a.NS == nil {
		a, b = b, a
	}
	if a.NS == nil {
		t.Fatal("netnstest.Veth: both ends in the test's own namespace")
	}
	// Made in a's namespace, b's end created straight in its own (ours
	// by PID), so neither end ever shows up anywhere else.
	to := fmt.Sprint(os.Getpid())
	if b.NS != nil {
		to = b.NS.Name
	}
	a.NS.IP("link", "add", a.Name, "type", "veth", "peer", "name", b.Name, "netns", to)
	t.Cleanup(func() {
		// Deleting one end deletes both. A namespace that is already gone
		// took its end along, unless something kept it alive; the end in
		// our namespace is checked for by name.
		if _, err := ipRun("-n", a.NS.Name, "link", "del", a.Name); err != nil && linkExists(a.NS.Name, a.Name) {
			t.Errorf("deleting veth %s in %s: %v", a.Name, a.NS.Name, err)
		}
		if b.NS == nil && linkExists("", b.Name) {
			if out, err := ipRun("link", "del", b.Name); err != nil {
				t.Errorf("deleting veth %s: %v: %s", b.Name, err, out)
			}
		}
	})
	for _, e := range []End{a, b} {
		if e.Addr == "" {
			continue
		}
		pre := []string{}
		if e.NS != nil {
			pre = []string{"-n", e.NS.Name}
		}
		ip(t, append(pre, "addr", "add", e.Addr, "dev", e.Name)...)
		ip(t, append(pre, "link", "set", e.Name, "up")...)
	}
}

// Lab is a bridge br0 in a namespace of its own and host namespaces whose
// eth0s hang on it, on a random 10.X.Y.0/24 that exists only inside them.
type Lab struct {
	// Prefix starts the name of every namespace of the lab.
	Prefix string
	// Subnet is the first three octets of the lab's /24, e.g. "10.123.45".
	Subnet string
	// Bridge is the namespace that holds br0 and the hosts' ports.
	Bridge *NS
	t      testing.TB
}

// Host is a namespace of a lab with eth0 plugged into the bridge.
type Host struct {
	*NS
	// Addr is eth0's address (without length), or "" when unaddressed.
	Addr string
	port string
	lab  *Lab
}

// NewLab creates the bridge namespace piimg-TAG<6 hex>-br with br0 up
// (no STP, no forwarding delay). It skips the test as New does.
func NewLab(t testing.TB, tag string) *Lab {
	t.Helper()
	Require(t)
	var b [2]byte
	rand.Read(b[:])
	l := &Lab{
		Prefix: "piimg-" + tag + randomHex(t),
		Subnet: fmt.Sprintf("10.%d.%d", 100+int(b[0])%100, b[1]),
		t:      t,
	}
	l.Bridge = newNamed(t, l.Prefix+"-br")
	l.Bridge.IP("link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
	l.Bridge.IP("link", "set", "br0", "up")
	return l
}

// Addr returns the address of host number host in the lab's subnet.
func (l *Lab) Addr(host int) string { return fmt.Sprintf("%s.%d", l.Subnet, host) }

// Add creates the namespace PREFIX-NAME whose eth0 is plugged into the
// bridge through port p-NAME there. With host in 1..254 eth0 gets
// Addr(host)/24 and is up; with 0 it is left down and unaddressed, for
// code under test that configures its own interface.
func (l *Lab) Add(name string, host int) *Host {
	l.t.Helper()
	h := &Host{NS: newNamed(l.t, l.Prefix+"-"+name), port: "p-" + name, lab: l}
	if len(h.port) > 15 {
		l.t.Fatalf("netnstest: host name %q is too long for a bridge port name", name)
	}
	eth0 := End{NS: h.NS, Name: "eth0"}
	if host != 0 {
		h.Addr = l.Addr(host)
		eth0.Addr = h.Addr + "/24"
	}
	Veth(l.t, End{NS: l.Bridge, Name: h.port}, eth0)
	l.Bridge.IP("link", "set", h.port, "master", "br0", "up")
	return h
}

// SetLink plugs the host's cable in (up) or pulls it out: its bridge port
// goes up or down, so the host sees its carrier come or go.
func (h *Host) SetLink(up bool) {
	h.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	h.lab.Bridge.IP("link", "set", h.port, state)
}

// ip runs ip(8) with args and fails t if it fails.
func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := ipRun(args...); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ipRun runs ip(8) with args, bounded in time, and returns its output.
func ipRun(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	return exec.CommandContext(ctx, "ip", args...).CombinedOutput()
}

// linkExists reports whether the namespace ns ("" for the test's own) has
// a link called name.
func linkExists(ns, name string) bool {
	args := []string{"link", "show", "dev", name}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, err := ipRun(args...)
	return err == nil
}

// randomHex returns six random hex digits.
func randomHex(t testing.TB) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}
