package netnstest

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestVethPair joins two namespaces by a veth pair, serves in one and
// connects from the other, runs a command inside, and checks that nothing
// is left when the subtest ends.
func TestVethPair(t *testing.T) {
	Require(t)
	var names []string
	t.Run("pair", func(t *testing.T) {
		srv, cli := New(t, "nt"), New(t, "nt")
		names = append(names, srv.Name, cli.Name)
		Veth(t, End{NS: srv, Name: "eth0", Addr: "10.250.0.1/24"}, End{NS: cli, Name: "eth0", Addr: "10.250.0.2/24"})
		echoOnce(t, srv, "10.250.0.1:7")
		expectEcho(t, cli, "10.250.0.1:7")
		out, err := cli.Command("ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "10.250.0.2/24") {
			t.Errorf("ip addr inside %s: %v %s", cli.Name, err, out)
		}
		// The test's own namespace is untouched by Do.
		if err := srv.Do(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if hasAddr("10.250.0.1") {
			t.Error("the namespace's address shows in the test's own namespace")
		}
	})
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); err == nil {
			t.Errorf("namespace %s left behind", n)
		}
	}
}

// TestLoopback: New brings lo up with 127.0.0.1; NewBare leaves it as
// the kernel made it, down and unaddressed.
func TestLoopback(t *testing.T) {
	Require(t)
	for _, tt := range []struct {
		name   string
		create func(testing.TB, string) *NS
		up     bool
	}{
		{"New", New, true},
		{"NewBare", NewBare, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.create(t, "nt")
			out, err := n.Command("ip", "-4", "-o", "addr", "show", "dev", "lo").CombinedOutput()
			if err != nil {
				t.Fatalf("ip addr show lo: %v: %s", err, out)
			}
			if got := strings.Contains(string(out), "inet 127.0.0.1/8"); got != tt.up {
				t.Errorf("lo has 127.0.0.1/8: %v, want %v:\n%s", got, tt.up, out)
			}
			out, err = n.Command("ip", "-o", "link", "show", "dev", "lo").CombinedOutput()
			if err != nil {
				t.Fatalf("ip link show lo: %v: %s", err, out)
			}
			if got := strings.Contains(string(out), ",UP"); got != tt.up {
				t.Errorf("lo up: %v, want %v:\n%s", got, tt.up, out)
			}
		})
	}
}

// TestVethToOwnNamespace makes a pair with one (unaddressed, down) end in
// the test's own namespace, and checks that the end goes with the test.
func TestVethToOwnNamespace(t *testing.T) {
	Require(t)
	own := "pnt" + randomHex(t)
	t.Run("pair", func(t *testing.T) {
		n := New(t, "nt")
		Veth(t, End{Name: own}, End{NS: n, Name: "eth0", Addr: "10.250.1.2/30"})
		if !linkExists("", own) {
			t.Fatalf("no %s in the test's namespace", own)
		}
		if !linkExists(n.Name, "eth0") {
			t.Fatalf("no eth0 in %s", n.Name)
		}
	})
	if linkExists("", own) {
		t.Errorf("veth %s left behind", own)
	}
}

// TestLab plugs three hosts into a lab's bridge, one unaddressed, and
// pulls a cable out and back in.
func TestLab(t *testing.T) {
	Require(t)
	var prefix string
	t.Run("lab", func(t *testing.T) {
		l := NewLab(t, "nt")
		prefix = l.Prefix
		a, b := l.Add("a", 2), l.Add("b", 3)
		bare := l.Add("bare", 0)
		if a.Addr != l.Subnet+".2" || b.Addr != l.Addr(3) || bare.Addr != "" {
			t.Errorf("addresses %q %q %q in %s", a.Addr, b.Addr, bare.Addr, l.Subnet)
		}
		if out, _ := bare.Command("ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput(); strings.Contains(string(out), "inet") {
			t.Errorf("the unaddressed host has %s", out)
		}
		echoOnce(t, a.NS, a.Addr+":7")
		expectEcho(t, b.NS, a.Addr+":7")
		a.SetLink(false)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if c, err := b.DialContext(ctx, "tcp4", a.Addr+":7"); err == nil {
			c.Close()
			t.Error("connected to a host whose cable is out")
		}
		a.SetLink(true)
		echoOnce(t, a.NS, a.Addr+":8")
		expectEcho(t, b.NS, a.Addr+":8")
	})
	if ents, _ := os.ReadDir("/run/netns"); prefix != "" {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) {
				t.Errorf("namespace %s left behind", e.Name())
			}
		}
	}
}

// TestDoReportsFailNow: a function that never returns is an error, not a
// hang.
func TestDoReportsFailNow(t *testing.T) {
	n := New(t, "nt")
	if err := n.Do(func() error { runtime.Goexit(); return nil }); err == nil {
		t.Error("Do of a function that exits its goroutine returned nil")
	}
	if err := n.Do(func() error { return io.EOF }); err != io.EOF {
		t.Errorf("Do returned %v, want fn's error", err)
	}
}

// echoOnce serves one connection at addr inside n: it writes "hi".
func echoOnce(t *testing.T, n *NS, addr string) {
	t.Helper()
	ln, err := n.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "hi")
	}()
}

// expectEcho connects from n to addr and expects "hi".
func expectEcho(t *testing.T, n *NS, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := n.DialContext(ctx, "tcp4", addr)
	if err != nil {
		t.Fatalf("connecting from %s to %s: %v", n.Name, addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hi" {
		t.Errorf("from %s: read %q, %v", addr, b, err)
	}
}

// hasAddr reports whether the test's own namespace has addr.
func hasAddr(addr string) bool {
	ifs, _ := net.InterfaceAddrs()
	for _, a := range ifs {
		if strings.HasPrefix(a.String(), addr+"/") {
			return true
		}
	}
	return false
}
