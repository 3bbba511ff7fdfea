//go:build linux

package vip_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	lab "github.com/piimage/piimage/services/vip/viplab"
)

func TestMain(m *testing.M) {
	lab.NodeMain() // the lab re-executes this binary as a VRRP node
	os.Exit(m.Run())
}

// syncBuf is a log buffer several processes write to.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var vipAddr = netip.MustParsePrefix("10.99.0.100/24")

type impl string

const (
	implOurs       impl = "ours"
	implKeepalived impl = "keepalived"
)

// pair is two lab nodes with one VRRP daemon each: hi has priority 150, lo 100.
type pair struct {
	t        *testing.T
	l        *lab.Lab
	hi, lo   *lab.Node
	hiI, loI impl
	hiS, loS lab.Spec
	hiP, loP lab.Proc
	dir      string
	log      *syncBuf
}

func newPair(t *testing.T, version int, hi, lo impl, unicast bool) *pair {
	t.Helper()
	if err := lab.Available(); err != nil {
		t.Skip(err)
	}
	if (hi == implKeepalived || lo == implKeepalived) && lab.KeepalivedAvailable() != nil {
		t.Skip(lab.KeepalivedAvailable())
	}
	l, err := lab.New(netip.MustParsePrefix("10.99.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{t: t, l: l, hiI: hi, loI: lo, dir: t.TempDir(), log: &syncBuf{}}
	t.Cleanup(func() {
		for _, pr := range []lab.Proc{p.hiP, p.loP} {
			if pr != nil {
				pr.Kill()
			}
		}
		if err := l.Close(); err != nil {
			t.Errorf("deleting namespaces: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon logs:\n%s", p.log)
		}
	})
	if p.hi, err = l.AddNode("hi", 2); err != nil {
		t.Fatal(err)
	}
	if p.lo, err = l.AddNode("lo", 3); err != nil {
		t.Fatal(err)
	}
	iv := 100 * time.Millisecond
	if version == 2 {
		iv = time.Second
	}
	p.hiS = lab.Spec{Version: version, VRID: 51, Priority: 150, VIP: vipAddr, Interval: iv}
	p.loS = lab.Spec{Version: version, VRID: 51, Priority: 100, VIP: vipAddr, Interval: iv}
	if unicast {
		p.hiS.Peers = []netip.Addr{p.lo.Addr.Addr()}
		p.loS.Peers = []netip.Addr{p.hi.Addr.Addr()}
	}
	return p
}

func (p *pair) start(n *lab.Node, which impl, s lab.Spec) lab.Proc {
	p.t.Helper()
	var pr lab.Proc
	var err error
	if which == implOurs {
		pr, err = n.StartOurs(s, p.dir, p.log)
	} else {
		pr, err = n.StartKeepalived(s, p.dir, p.log)
	}
	if err != nil {
		p.t.Fatalf("starting %s in %s: %v", which, n.NS, err)
	}
	return pr
}

func (p *pair) startHi() { p.hiP = p.start(p.hi, p.hiI, p.hiS) }
func (p *pair) startLo() { p.loP = p.start(p.lo, p.loI, p.loS) }

// failover bounds one election or hand-over: three master-down intervals
// of a v2 router plus slack for a loaded machine.
func (p *pair) bound() time.Duration {
	if p.hiS.Version == 2 {
		return 12 * time.Second
	}
	return 4 * time.Second
}

// expect waits until holder (and only it, when sole) holds the VIP.
func (p *pair) expect(what string, holder *lab.Node, sole bool) {
	p.t.Helper()
	other := p.lo
	if holder == p.lo {
		other = p.hi
	}
	ok := lab.WaitFor(p.bound(), func() bool {
		return holder.Holds(vipAddr.Addr()) && (!sole || !other.Holds(vipAddr.Addr()))
	})
	if !ok {
		p.t.Fatalf("%s: want VIP on %s only=%v; hi holds %v, lo holds %v", what, holder.NS, sole,
			p.hi.Holds(vipAddr.Addr()), p.lo.Holds(vipAddr.Addr()))
	}
	// And it stays so for a moment: no flapping.
	time.Sleep(3 * p.hiS.Interval)
	if !holder.Holds(vipAddr.Addr()) || (sole && other.Holds(vipAddr.Addr())) {
		p.t.Fatalf("%s: VIP moved again; hi holds %v, lo holds %v", what, p.hi.Holds(vipAddr.Addr()), p.lo.Holds(vipAddr.Addr()))
	}
}

// exercise runs the whole interop scenario on the pair: election by
// priority, then for each fault of the higher node (graceful stop,
// SIGKILL, link cut) the lower takes over and the higher takes back when
// it returns (preemption).
func (p *pair) exercise() {
	p.startLo()
	p.expect("lower alone", p.lo, true)
	p.startHi()
	p.expect("higher preempts", p.hi, true)

	p.hiP.Stop()
	p.hiP = nil
	p.expect("higher stopped", p.lo, true)
	p.startHi()
	p.expect("higher back after stop", p.hi, true)

	p.hiP.Kill()
	p.hiP = nil
	// A killed daemon leaves its VIP on the interface; the survivor
	// takes it over and announces it.
	p.expect("higher killed", p.lo, false)
	p.startHi()
	p.expect("higher back after kill", p.hi, true)

	if err := p.hi.CutLink(); err != nil {
		p.t.Fatal(err)
	}
	p.expect("higher's link cut", p.lo, false)
	if err := p.hi.RestoreLink(); err != nil {
		p.t.Fatal(err)
	}
	p.expect("higher's link back", p.hi, true)

	// And the lower one stopping or dying changes nothing.
	p.loP.Kill()
	p.loP = nil
	p.expect("lower killed", p.hi, true)
}

func TestInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespace interop test skipped in -short mode")
	}
	// Each case has namespaces of its own, so they run in parallel; the v2
	// ones wait whole seconds.
	for _, c := range []struct {
		version int
		hi, lo  impl
		unicast bool
	}{
		{3, implOurs, implKeepalived, false},
		{3, implKeepalived, implOurs, false},
		{3, implOurs, implOurs, false},
		{3, implOurs, implKeepalived, true},
		{3, implKeepalived, implOurs, true},
		{2, implOurs, implKeepalived, false},
		{2, implKeepalived, implOurs, false},
		{2, implOurs, implOurs, false},
	} {
		mode := "multicast"
		if c.unicast {
			mode = "unicast"
		}
		t.Run(fmt.Sprintf("v%d/%s/%s-high/%s-low", c.version, mode, c.hi, c.lo), func(t *testing.T) {
			t.Parallel()
			newPair(t, c.version, c.hi, c.lo, c.unicast).exercise()
		})
	}
}

// TestPreemptDelay checks in the lab that a higher-priority node joining a
// running lower master waits its preempt_delay before taking the VIP, and
// then takes it, against ours and keepalived as the lower node.
func TestPreemptDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespace test skipped in -short mode")
	}
	const delay = 2 * time.Second
	for _, lo := range []impl{implOurs, implKeepalived} {
		t.Run(string(lo)+"-low", func(t *testing.T) {
			t.Parallel()
			p := newPair(t, 3, implOurs, lo, false)
			p.hiS.PreemptDelay = delay
			p.startLo()
			p.expect("lower alone", p.lo, true)
			start := time.Now()
			p.startHi()
			// Until shortly before the delay ends the lower node keeps
			// the VIP alone.
			for time.Since(start) < delay-300*time.Millisecond {
				if p.hi.Holds(vipAddr.Addr()) || !p.lo.Holds(vipAddr.Addr()) {
					t.Fatalf("after %s (preempt_delay %s): hi holds %v, lo holds %v", time.Since(start).Round(time.Millisecond),
						delay, p.hi.Holds(vipAddr.Addr()), p.lo.Holds(vipAddr.Addr()))
				}
				time.Sleep(20 * time.Millisecond)
			}
			p.expect("higher after its preempt delay", p.hi, true)
			t.Logf("VIP on the higher node alone (and stable for 3 intervals) %s after it started (preempt_delay %s)", time.Since(start).Round(10*time.Millisecond), delay)
		})
	}
}
