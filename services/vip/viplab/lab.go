// Package viplab builds throw-away networks of namespaces joined by a bridge
// for the VIP service's interoperability tests and failover benchmark, and
// runs VRRP nodes in them: ours (this binary re-executed inside a
// namespace) and keepalived.
//
// Nothing here touches the machine's own network namespace: every link is
// created inside a namespace the lab made, and Close deletes them all.
package viplab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Available reports why labs cannot run here, or nil when they can.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("needs iproute2 (ip)")
	}
	return nil
}

// Lab is a bridge in its own namespace and the nodes plugged into it.
type Lab struct {
	// Prefix starts every namespace name of this lab.
	Prefix string
	// Subnet is the nodes' subnet; the bridge has no address.
	Subnet netip.Prefix
	br     string
	nodes  []*Node
}

// Node is one namespace with an interface eth0 on the lab's bridge.
type Node struct {
	NS   string
	Addr netip.Prefix
	// port is the bridge-side end of the node's veth.
	port string
	lab  *Lab
}

// New creates the bridge namespace. subnet is the lab's private subnet,
// e.g. 10.99.0.0/24; it exists only inside the lab's namespaces.
func New(subnet netip.Prefix) (*Lab, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	l := &Lab{Prefix: "piimg-vip" + hex.EncodeToString(b[:]), Subnet: subnet.Masked()}
	l.br = l.Prefix + "-br"
	if err := run("ip", "netns", "add", l.br); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"ip", "-n", l.br, "link", "set", "lo", "up"},
		{"ip", "-n", l.br, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		{"ip", "-n", l.br, "link", "set", "br0", "up"},
	} {
		if err := run(args...); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// AddNode creates a namespace named Prefix-name whose eth0 has addr
// (host number host in the lab's subnet) and is plugged into the bridge.
func (l *Lab) AddNode(name string, host int) (*Node, error) {
	a := l.Subnet.Addr().As4()
	a[3] = byte(host)
	n := &Node{NS: l.Prefix + "-" + name, Addr: netip.PrefixFrom(netip.AddrFrom4(a), l.Subnet.Bits()), port: "p-" + name, lab: l}
	if err := run("ip", "netns", "add", n.NS); err != nil {
		return nil, err
	}
	l.nodes = append(l.nodes, n)
	for _, args := range [][]string{
		{"ip", "-n", n.NS, "link", "set", "lo", "up"},
		// Created inside the bridge namespace, the peer moved straight
		// into the node's: the host namespace never sees either end.
		{"ip", "-n", l.br, "link", "add", n.port, "type", "veth", "peer", "name", "eth0", "netns", n.NS},
		{"ip", "-n", l.br, "link", "set", n.port, "master", "br0", "up"},
		{"ip", "-n", n.NS, "addr", "add", n.Addr.String(), "dev", "eth0"},
		{"ip", "-n", n.NS, "link", "set", "eth0", "up"},
	} {
		if err := run(args...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Close deletes every namespace of the lab.
func (l *Lab) Close() error {
	var errs []error
	for _, n := range l.nodes {
		errs = append(errs, run("ip", "netns", "del", n.NS))
	}
	errs = append(errs, run("ip", "netns", "del", l.br))
	return errors.Join(errs...)
}

// Cmd returns a command that runs inside the node's namespace.
func (n *Node) Cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NS, name}, args...)...)
}

// Holds reports whether one of the node's interfaces (eth0, or a virtual
// MAC device on it) has addr.
func (n *Node) Holds(addr netip.Addr) bool {
	out, err := exec.Command("ip", "-n", n.NS, "-4", "-o", "addr", "show").Output()
	if err != nil {
		return false
	}
	return bytes.Contains(out, []byte(" "+addr.String()+"/"))
}

// HasLink reports whether the node has a network device called name.
func (n *Node) HasLink(name string) bool {
	return exec.Command("ip", "-n", n.NS, "link", "show", "dev", name).Run() == nil
}

// Reach reports whether addr answers from the node within two seconds: a
// TCP connection to port 9 (discard, normally closed) is accepted or
// refused, which needs the address resolved by ARP and the host to answer.
// It uses bash's /dev/tcp, so no ping is needed.
func (n *Node) Reach(addr netip.Addr) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := n.Cmd(ctx, "bash", "-c", "exec 3<>/dev/tcp/"+addr.String()+"/9").CombinedOutput()
	return err == nil || bytes.Contains(out, []byte("Connection refused"))
}

// Neighbor returns the MAC address the node's ARP cache holds for addr on
// eth0, or "" when it has none.
func (n *Node) Neighbor(addr netip.Addr) string {
	out, err := exec.Command("ip", "-n", n.NS, "neigh", "show", addr.String(), "dev", "eth0").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			return f[i+1]
		}
	}
	return ""
}

// PortOf returns the node behind the bridge port that has learned mac
// (as "00:00:5e:00:01:33"), or nil.
func (l *Lab) PortOf(mac string) *Node {
	out, err := exec.Command("ip", "netns", "exec", l.br, "bridge", "fdb", "show", "br", "br0").Output()
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != mac || f[1] != "dev" {
			continue
		}
		for _, n := range l.nodes {
			if n.port == f[2] {
				return n
			}
		}
	}
	return nil
}

// CutLink takes the node's cable out: the bridge-side end of its veth goes
// down, so the node sees its carrier go.
func (n *Node) CutLink() error { return run("ip", "-n", n.lab.br, "link", "set", n.port, "down") }

// RestoreLink plugs the cable back in.
func (n *Node) RestoreLink() error { return run("ip", "-n", n.lab.br, "link", "set", n.port, "up") }

// WaitFor polls cond every 10ms until it holds or d passes.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func run(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("running %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
