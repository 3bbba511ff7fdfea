//go:build linux

package vip_test

import (
	"testing"
	"time"

	lab "github.com/piimage/piimage/services/vip/viplab"
)

// vmac51 is the VRRP virtual MAC of router 51.
const vmac51 = "00:00:5e:00:01:33"

// TestVirtualMAC runs two routers with virtual_mac (use_vmac) and a client
// on the lab's bridge: the client's ARP entry for the VIP is the virtual
// MAC, the master's frames teach the bridge that MAC on its port, and
// after a failover the client reaches the new master through the very same
// ARP entry while the bridge has moved the MAC to the new master's port.
func TestVirtualMAC(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespace test skipped in -short mode")
	}
	for _, c := range []struct {
		name   string
		hi, lo impl
	}{
		{"ours-high/ours-low", implOurs, implOurs},
		{"ours-high/keepalived-low", implOurs, implKeepalived},
		{"keepalived-high/ours-low", implKeepalived, implOurs},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := newPair(t, 3, c.hi, c.lo, false)
			p.hiS.VirtualMAC, p.loS.VirtualMAC = true, true
			client, err := p.l.AddNode("cl", 9)
			if err != nil {
				t.Fatal(err)
			}
			vip := vipAddr.Addr()
			// ours keeps the device only while master; keepalived keeps
			// it always and moves the address.
			devices := func(n *lab.Node, which impl, master bool) {
				t.Helper()
				if which == implOurs && n.HasLink("vrrp.51") != master {
					t.Errorf("%s: vrrp.51 present = %v, want %v", n.NS, !master, master)
				}
			}

			p.startLo()
			p.expect("lower alone", p.lo, true)
			p.startHi()
			p.expect("higher preempts", p.hi, true)
			devices(p.hi, c.hi, true)
			devices(p.lo, c.lo, false)
			if !client.Reach(vip) {
				t.Fatal("client cannot reach the VIP on the higher node")
			}
			// keepalived 2.2 leaves eth0 answering ARP for the VIP too, so
			// only our master is sure to be known by the virtual MAC.
			if got := client.Neighbor(vip); c.hi == implOurs && got != vmac51 {
				t.Fatalf("client's ARP entry for %s is %q, want the virtual MAC %s", vip, got, vmac51)
			}
			if !lab.WaitFor(2*time.Second, func() bool { return p.l.PortOf(vmac51) == p.hi }) {
				t.Errorf("bridge did not learn %s on the higher node's port", vmac51)
			}

			p.hiP.Stop()
			p.hiP = nil
			p.expect("higher stopped", p.lo, true)
			devices(p.hi, c.hi, false)
			devices(p.lo, c.lo, true)
			if !lab.WaitFor(2*time.Second, func() bool { return p.l.PortOf(vmac51) == p.lo }) {
				t.Errorf("bridge did not move %s to the lower node's port", vmac51)
			}
			if !client.Reach(vip) {
				t.Fatal("client cannot reach the VIP on the lower node")
			}
			if got := client.Neighbor(vip); c.lo == implOurs && got != vmac51 {
				t.Fatalf("after failover the client's ARP entry for %s is %q, want still %s", vip, got, vmac51)
			}

			p.startHi()
			p.expect("higher back", p.hi, true)
			devices(p.hi, c.hi, true)
			devices(p.lo, c.lo, false)
			if !client.Reach(vip) || (c.hi == implOurs && client.Neighbor(vip) != vmac51) {
				t.Fatalf("after failback: ping or ARP entry wrong (entry %q)", client.Neighbor(vip))
			}
		})
	}
}
