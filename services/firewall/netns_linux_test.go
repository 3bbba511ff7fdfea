package firewall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/piimage/piimage/internal/netnstest"
	"github.com/piimage/piimage/overlays"
)

// lab is a set of network namespaces joined by a bridge in a namespace of
// its own, on a test-only subnet that exists only inside them.
type lab struct {
	t     *testing.T
	net   *netnstest.Lab
	hosts map[string]*netnstest.Host
}

// newLab creates the bridge namespace and one namespace per host name,
// host h getting the address addr(h)/24 on its eth0. Everything is
// deleted when the test ends. It skips without root or ip.
func newLab(t *testing.T, hosts ...string) *lab {
	t.Helper()
	l := &lab{t: t, net: netnstest.NewLab(t, "fw"), hosts: map[string]*netnstest.Host{}}
	for _, h := range hosts {
		l.hosts[h] = l.net.Add(h, hostNumber(t, h))
	}
	return l
}

// hostNumber returns host h's number in the lab's subnet.
func hostNumber(t *testing.T, h string) int {
	for i, name := range labHosts {
		if name == h {
			return i + 2
		}
	}
	t.Fatalf("no host %s", h)
	return 0
}

// addr returns host h's address.
func (l *lab) addr(h string) string { return l.net.Addr(hostNumber(l.t, h)) }

// labHosts are the hosts of every lab, in address order.
var labHosts = []string{"node", "peer", "admin", "stranger"}

// in runs f on a thread inside host h's namespace. Sockets f opens stay
// in that namespace.
func (l *lab) in(h string, f func() error) error { return l.hosts[h].Do(f) }

// applier returns an Applier for host h's namespace.
func (l *lab) applier(h string) *Applier {
	f, err := os.Open(l.hosts[h].Path())
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { f.Close() })
	return &Applier{NetNS: f}
}

// nft runs nft in host h's namespace.
func (l *lab) nft(h string, stdin string, args ...string) (string, error) {
	cmd := l.hosts[h].Command("nft", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// dial connects from host h to addr within timeout.
func (l *lab) dial(h, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.hosts[h].DialContext(ctx, "tcp4", addr)
}

// serve opens an echo-once TCP listener in host h on port and closes it
// at the end of the test.
func (l *lab) serve(h string, port int) {
	ln, err := l.hosts[h].Listen("tcp4", fmt.Sprintf(":%d", port))
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "hello from %d\n", port)
				io.Copy(io.Discard, c)
			}()
		}
	}()
}

var counterValues = regexp.MustCompile(`\n\t\tpackets \d+ bytes \d+`)

const testOverlay = `hostname: lb1
role: lbmaster
interfaces:
  eth0: {address: PFX.2/24, gateway: PFX.1}
vip: {router_id: 9, priority: 101, address: PFX.100/24}
balancer:
  port: 80
  backends: [{name: web, address: "PFX.9:80"}]
  stats: {port: 1936, user: u, password_hash: "pbkdf2-sha256$100000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}
firewall:
  admin_from: [PFX.4/32]
  vrrp_peers: [PFX.3]
  rate_limit: {per_second: 20, burst: 40, exempt: [PFX.4/32]}
  icmp_per_second: 5
`

func (l *lab) overlay() *overlays.Node {
	n, err := overlays.Parse("lab.yaml", []byte(strings.ReplaceAll(testOverlay, "PFX", l.net.Subnet)))
	if err != nil {
		l.t.Fatal(err)
	}
	return n
}

// TestApplyListsAsRendered installs each testdata ruleset with Apply in a
// namespace and compares `nft list` with the rendering; then loads the
// rendering with nft itself in another namespace: both list the same.
func TestApplyListsAsRendered(t *testing.T) {
	l := newLab(t, "node", "peer")
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian package nftables) to list the ruleset")
	}
	paths := []string{"lb.yaml", "lb-default.yaml", "web-primary.yaml", "web-replica.yaml"}
	for _, p := range paths {
		rs := Generate(loadNode(t, p), Options{})
		if err := l.applier("node").Apply(rs); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		got, err := l.nft("node", "", "list", "table", "inet", TableName)
		if err != nil {
			t.Fatalf("nft list: %v\n%s", err, got)
		}
		got = counterValues.ReplaceAllString(got, "")
		if got != rs.Table() {
			t.Errorf("%s: the kernel lists\n%s\nthe rendering is\n%s", p, got, rs.Table())
		}
		// The same text through nft -f in the peer namespace.
		if out, err := l.nft("peer", "delete table inet piimage\n", "-f", "-"); err != nil && !strings.Contains(out, "No such file") {
			t.Logf("clearing peer: %v %s", err, out)
		}
		if out, err := l.nft("peer", rs.String(), "-f", "-"); err != nil {
			t.Fatalf("%s: nft -f refuses the rendering: %v\n%s", p, err, out)
		}
		viaNft, _ := l.nft("peer", "", "list", "table", "inet", TableName)
		if counterValues.ReplaceAllString(viaNft, "") != got {
			t.Errorf("%s: nft -f of the rendering lists\n%s\nApply lists\n%s", p, viaNft, got)
		}
	}
	// Removing: a nil ruleset deletes the table.
	if err := l.applier("node").Apply(nil); err != nil {
		t.Fatal(err)
	}
	if out, _ := l.nft("node", "", "list", "ruleset"); strings.Contains(out, TableName) {
		t.Errorf("table still there after Apply(nil):\n%s", out)
	}
}

// TestApplyIsAtomic: a batch the kernel refuses (a rule naming a counter
// that does not exist) leaves the previous ruleset in place, whole.
func TestApplyIsAtomic(t *testing.T) {
	l := newLab(t, "node")
	a := l.applier("node")
	good := Generate(l.overlay(), Options{})
	if err := a.Apply(good); err != nil {
		t.Fatal(err)
	}
	bad := Generate(l.overlay(), Options{})
	bad.Counters = bad.Counters[:len(bad.Counters)-1] // "dropped" is still used
	if err := a.Apply(bad); err == nil {
		t.Fatal("the kernel accepted a rule naming a missing counter")
	}
	cs, err := a.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != len(good.Counters) {
		t.Errorf("after a refused batch the table has counters %v, want the first ruleset's %v", cs, good.Counters)
	}
}

// TestApplyRefusesTheHost: the applier never touches the initial network
// namespace unless AllowInitial is set (which only PID 1 does).
func TestApplyRefusesTheHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to read /proc/1/ns/net")
	}
	a := &Applier{}
	initial, err := a.inInitialNamespace()
	if err != nil {
		t.Skipf("cannot tell the namespace: %v", err)
	}
	if !initial {
		t.Skip("this test process is not in the initial network namespace")
	}
	if err := a.Apply(Generate(loadNode(t, "lb.yaml"), Options{})); !errors.Is(err, ErrInitialNamespace) {
		t.Fatalf("Apply in the initial namespace: %v, want ErrInitialNamespace", err)
	}
	if _, err := a.Counters(); !errors.Is(err, ErrInitialNamespace) {
		t.Fatalf("Counters in the initial namespace: %v", err)
	}
	f, err := os.Open("/proc/1/ns/net")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	if err := (&Applier{NetNS: f}).Apply(nil); !errors.Is(err, ErrInitialNamespace) {
		t.Fatalf("Apply to PID 1's namespace by file: %v, want ErrInitialNamespace", err)
	}
}

// TestFirewallInNamespaces installs the load balancer's ruleset in "node"
// and checks from the other namespaces: public ports open, other ports
// (even with a listener) closed, the admin port open to the management
// host only, VRRP accepted from the peer and dropped from a stranger
// (counted), ICMP echo and new connections rate-limited per source.
func TestFirewallInNamespaces(t *testing.T) {
	l := newLab(t, labHosts...)
	node := l.addr("node")
	for _, p := range []int{80, 1936, 9000, 22, 8873} {
		l.serve("node", p)
	}
	a := l.applier("node")
	if err := a.Apply(Generate(l.overlay(), Options{})); err != nil {
		t.Fatal(err)
	}

	t.Run("ports", func(t *testing.T) {
		tests := []struct {
			from string
			port int
			open bool
		}{
			{"stranger", 80, true},
			{"stranger", 1936, true},
			{"stranger", 9000, false},
			{"stranger", 22, false},
			{"stranger", 8873, false},
			{"admin", 9000, true},
			{"peer", 9000, false},
			{"admin", 22, false},
		}
		for _, tt := range tests {
			c, err := l.dial(tt.from, fmt.Sprintf("%s:%d", node, tt.port), time.Second)
			if tt.open {
				if err != nil {
					t.Errorf("%s -> %d: %v, want open", tt.from, tt.port, err)
					continue
				}
				// A whole exchange works, on tracked and untracked ports.
				c.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 32)
				n, err := c.Read(buf)
				if err != nil || !strings.HasPrefix(string(buf[:n]), "hello") {
					t.Errorf("%s -> %d: read %q %v", tt.from, tt.port, buf[:n], err)
				}
				c.Close()
				continue
			}
			if err == nil {
				c.Close()
				t.Errorf("%s -> %d: connected, want closed", tt.from, tt.port)
			} else if !isTimeout(err) {
				t.Errorf("%s -> %d: %v, want a timeout (dropped, not refused)", tt.from, tt.port, err)
			}
		}
	})

	t.Run("outbound", func(t *testing.T) {
		l.serve("stranger", 7777)
		c, err := l.dial("node", l.addr("stranger")+":7777", 2*time.Second)
		if err != nil {
			t.Fatalf("the node's own connection out: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 32)
		if n, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "hello") {
			t.Errorf("reply to the node's own connection: %q %v", buf[:n], err)
		}
	})

	t.Run("vrrp", func(t *testing.T) {
		before := counters(t, a)
		var rx net.PacketConn
		err := l.in("node", func() (err error) { rx, err = net.ListenPacket("ip4:112", "0.0.0.0"); return err })
		if err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		got := make(chan string, 16)
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := rx.ReadFrom(buf)
				if err != nil {
					return
				}
				got <- from.String()
			}
		}()
		send := func(h string) {
			var c net.PacketConn
			err := l.in(h, func() (err error) { c, err = net.ListenPacket("ip4:112", l.addr(h)); return err })
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			advert := []byte{0x31, 9, 101, 1, 0, 10, 0, 0, 10, 0, 0, 100} // a VRRPv3 advert's shape
			for i := 0; i < 3; i++ {
				if _, err := c.WriteTo(advert, &net.IPAddr{IP: net.ParseIP(node)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		send("stranger")
		send("peer")
		deadline := time.After(2 * time.Second)
		seen := map[string]int{}
	loop:
		for {
			select {
			case from := <-got:
				seen[from]++
				if seen[l.addr("peer")] == 3 {
					// The stranger's were sent first; give stragglers a moment.
					time.Sleep(100 * time.Millisecond)
					break loop
				}
			case <-deadline:
				break loop
			}
		}
		if seen[l.addr("peer")] != 3 || seen[l.addr("stranger")] != 0 {
			t.Errorf("VRRP received from %v; want 3 from the peer and none from the stranger", seen)
		}
		after := counters(t, a)
		if d := after[CounterVRRPStrangers] - before[CounterVRRPStrangers]; d != 3 {
			t.Errorf("vrrp_strangers counted %d packets, want 3", d)
		}
		if d := after[CounterVRRP] - before[CounterVRRP]; d != 3 {
			t.Errorf("vrrp counted %d packets, want 3", d)
		}
	})

	t.Run("icmp", func(t *testing.T) {
		replies := pingBurst(t, l, "stranger", node, 40)
		// Rate 5/s, burst 10: about 10 of 40 sent at once are answered.
		if replies < 5 || replies > 16 {
			t.Errorf("%d of 40 echo requests answered; want about the burst of 10", replies)
		}
		if c := counters(t, a); c[CounterICMPLimited] == 0 {
			t.Errorf("icmp_limited is 0: %v", c)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		// 20/s with a burst of 40 per source: of 120 connections opened at
		// once from the stranger about 40 get through at first; the
		// exempt management host gets all of them.
		if ok := connectBurst(l, "stranger", node+":80", 120); ok < 30 || ok > 70 {
			t.Errorf("%d of 120 connections from one source got through; want about the burst of 40", ok)
		}
		if ok := connectBurst(l, "admin", node+":80", 120); ok != 120 {
			t.Errorf("%d of 120 connections from the exempt host got through; want all", ok)
		}
		if c := counters(t, a); c[CounterRateLimited] == 0 {
			t.Errorf("rate_limited is 0: %v", c)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func counters(t *testing.T, a *Applier) map[string]uint64 {
	t.Helper()
	cs, err := a.Counters()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, c := range cs {
		m[c.Name] = c.Packets
	}
	return m
}

// connectBurst starts n non-blocking connects from host h to addr at once
// (the sockets are made on the thread inside h's namespace, never
// elsewhere) and returns how many connected within 700ms, less than TCP's
// first SYN retry.
func connectBurst(l *lab, h, addr string, n int) int {
	ap := netip.MustParseAddrPort(addr)
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	err := l.in(h, func() error {
		for i := 0; i < n; i++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	ok := 0
	for _, fd := range fds {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if k, err := unix.Poll(pfd, 0); err != nil || k == 0 {
			continue
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v == 0 {
			ok++
		}
	}
	return ok
}

// pingBurst sends n ICMP echo requests from host h to dst at once and
// counts the replies within a second.
func pingBurst(t *testing.T, l *lab, h, dst string, n int) int {
	var c *icmp.PacketConn
	err := l.in(h, func() (err error) { c, err = icmp.ListenPacket("ip4:icmp", l.addr(h)); return err })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := int(time.Now().UnixNano() & 0xffff)
	for i := 0; i < n; i++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: i, Data: []byte("piimage")}}
		b, _ := m.Marshal(nil)
		if _, err := c.WriteTo(b, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
			t.Fatal(err)
		}
	}
	replies := 0
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1500)
	for {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			return replies
		}
		if m, err := icmp.ParseMessage(1, buf[:k]); err == nil && m.Type == ipv4.ICMPTypeEchoReply {
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
				replies++
			}
		}
	}
}
