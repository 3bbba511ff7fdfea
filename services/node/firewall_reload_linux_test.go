package node

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piimage/piimage/internal/netnstest"
	"github.com/piimage/piimage/services/firewall"
)

// TestFirewallReloadOnHangup runs the init in process mode as a web node
// whose admin port is open to a management host only. SIGHUP after the
// overlay adds the stranger's address to admin_from opens the port to the
// stranger; SIGHUP after the overlay is broken keeps the rules in place
// (the stranger still gets in, a closed port stays dropped) and /status
// says why; SIGHUP after it is fixed clears that.
func TestFirewallReloadOnHangup(t *testing.T) {
	l := netnstest.NewLab(t, "fwr")
	node, mgmt, stranger := l.Add("node", 0), l.Add("mgmt", 4), l.Add("stranger", 5)
	bin := buildInit(t)
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	writeFile(t, filepath.Join(www, "index.html"), "hello\n")
	ov := filepath.Join(dir, "node.yaml")
	overlay := func(adminFrom string) string {
		return labSub(l, `hostname: reload1
role: web
interfaces:
  eth0: {address: PFX.2/24}
web: {root: `+www+`}
firewall: {admin_from: [`+adminFrom+`]}
`)
	}
	writeFile(t, ov, overlay("PFX.4/32"))
	n := startNode(t, node.NS, bin, "--state", filepath.Join(dir, "state"), "--overlay", ov)
	n.waitOutput(t, "reload1 up")

	admin := labSub(l, "PFX.2:9000")
	dial := func(addr string) error {
		return stranger.Do(func() error {
			c, err := net.DialTimeout("tcp4", addr, 700*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	// dropped: a timeout (a refusal would mean no firewall).
	dropped := func(addr string) {
		t.Helper()
		err := dial(addr)
		if ne := (net.Error)(nil); err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("the stranger's connection to %s: %v, want a timeout (dropped)", addr, err)
		}
	}
	open := func(addr string) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = dial(addr); err == nil {
				return
			}
		}
		t.Errorf("the stranger cannot reach %s: %v\n%s", addr, err, n.output())
	}
	hangup := func(wait string, times int) {
		t.Helper()
		if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(n.output(), wait) < times {
			if time.Now().After(deadline) {
				t.Fatalf("no %q (#%d) after SIGHUP:\n%s", wait, times, n.output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	dropped(admin)
	writeFile(t, ov, overlay("PFX.4/32, PFX.5/32"))
	hangup("firewall reloaded from "+ov+"; public TCP ports: 80", 1)
	open(admin)

	// A broken overlay: the rules stay.
	writeFile(t, ov, overlay("PFX.4/32, PFX.5/32")+"firewal: {}\n")
	hangup("firewall NOT reloaded: the overlay is invalid", 1)
	if !strings.Contains(n.output(), "the previous rules stay in place") {
		t.Errorf("the console does not say the rules stay:\n%s", n.output())
	}
	open(admin)
	dropped(labSub(l, "PFX.2:9999"))
	if out, err := node.Command("nft", "list", "table", "inet", firewall.TableName).CombinedOutput(); err == nil {
		if !strings.Contains(string(out), labSub(l, "PFX.5")) {
			t.Errorf("the installed table lost the stranger's admin rule:\n%s", out)
		}
	} else if _, lerr := exec.LookPath("nft"); lerr == nil {
		t.Errorf("nft list table: %v\n%s", err, out)
	}
	st := statusFrom(t, mgmt.NS, labSub(l, "http://PFX.2:9000/status"))
	if st.Firewall == nil || !st.Firewall.Installed || !strings.Contains(st.Firewall.Error, "the last reload failed: the overlay is invalid") ||
		!strings.Contains(st.Firewall.Error, "the previous rules stay in place") {
		t.Errorf("firewall status after a failed reload: %+v", st.Firewall)
	}

	// Fixed again, and the stranger removed.
	writeFile(t, ov, overlay("PFX.4/32"))
	hangup("firewall reloaded from "+ov, 2)
	dropped(admin)
	st = statusFrom(t, mgmt.NS, labSub(l, "http://PFX.2:9000/status"))
	if st.Firewall == nil || !st.Firewall.Installed || st.Firewall.Error != "" {
		t.Errorf("firewall status after a good reload: %+v", st.Firewall)
	}
	if err := n.stop(); err != nil {
		t.Errorf("stopping: %v\n%s", err, n.output())
	}
}

// TestFirewallReloadRefused: when the ruleset cannot be applied (here the
// applier's namespace is a regular file, so nothing real is touched), the
// reload keeps the previous state and says so.
func TestFirewallReloadRefused(t *testing.T) {
	dir := t.TempDir()
	ov := filepath.Join(dir, "node.yaml")
	writeFile(t, ov, "hostname: refused1\nrole: web\ninterfaces:\n  eth0: {address: 10.99.0.2/24}\nweb: {root: /srv}\n")
	notNS, err := os.Open(ov)
	if err != nil {
		t.Fatal(err)
	}
	defer notNS.Close()
	var out syncBuffer
	h := &hardening{con: console{out: &out}, wg: &sync.WaitGroup{}, applier: &firewall.Applier{NetNS: notNS}, disabled: true}
	h.reloadFirewall(ov)
	if !strings.Contains(out.String(), "firewall NOT reloaded: applying the new ruleset: ") || !strings.Contains(out.String(), "the firewall stays disabled") {
		t.Errorf("console:\n%s", out.String())
	}
	st := h.firewallStatus()
	if st.Installed || !st.Disabled || !strings.Contains(st.Error, "the last reload failed: applying the new ruleset") {
		t.Errorf("status %+v", st)
	}
	// Without network permission nothing is ever applied or reloaded.
	none := &hardening{con: console{out: &out}, wg: &sync.WaitGroup{}}
	none.reloadFirewall(ov)
	if st := none.firewallStatus(); !strings.Contains(st.Error, "--no-network") {
		t.Errorf("status without network %+v", st)
	}
}
