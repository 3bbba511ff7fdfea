package netconf

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/piimage/piimage/internal/netnstest"
)

// newTestNetns creates a network namespace that the test deletes, with lo
// down as the init finds it, and returns it with a netlink handle in it.
func newTestNetns(t *testing.T) (*netnstest.NS, *netlink.Handle) {
	t.Helper()
	n := netnstest.NewBare(t, "nc")
	ns, err := netns.GetFromPath(n.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return n, h
}

func TestNetlinkInNetns(t *testing.T) {
	n, h := newTestNetns(t)
	// A veth pair, as this machine's kernel may lack the dummy driver.
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}); err != nil {
		t.Fatalf("adding veth eth0: %v", err)
	}
	peer, err := h.LinkByName("peer0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	nl := NewNetlink(h)
	// A stale address, as if left by an earlier overlay.
	if err := nl.LinkUp("eth0"); err != nil {
		t.Fatal(err)
	}
	if err := nl.AddAddr("eth0", pfx("10.77.9.9/24")); err != nil {
		t.Fatal(err)
	}
	plan := Desired(node("10.77.0.2/24", "10.77.0.1", "10.77.5.2/24")) // wlan0 absent
	rec := &recorder{Applier: nl}
	if err := Apply(rec, plan); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := `link lo up
addr del 10.77.9.9/24 dev eth0
addr add 10.77.0.2/24 dev eth0
route add default via 10.77.0.1 dev eth0`
	if got := strings.Join(rec.ops, "\n"); got != want {
		t.Errorf("ops:\n%s\nwant:\n%s", got, want)
	}
	rec.ops = nil
	if err := Apply(rec, plan); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if len(rec.ops) != 0 {
		t.Errorf("second Apply was not idempotent:\n%s", strings.Join(rec.ops, "\n"))
	}
	out, err := exec.Command("ip", "-n", n.Name, "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inet 10.77.0.2/24") || strings.Contains(string(out), "10.77.9.9") {
		t.Errorf("ip addr show eth0: %v\n%s", err, out)
	}
	out, err = exec.Command("ip", "-n", n.Name, "-4", "route", "show", "default").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "default via 10.77.0.1 dev eth0") {
		t.Errorf("ip route show default: %v\n%s", err, out)
	}
	if _, _, err := nl.Link("lo"); err != nil {
		t.Error(err)
	}
	if got, _ := nl.Addrs("lo"); len(got) != 1 || got[0] != pfx("127.0.0.1/8") {
		t.Errorf("lo addresses = %v", got)
	}
}
