package vip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services"
)

const testOverlay = `hostname: lb01
role: lbmaster
interfaces:
  eth0: {address: 192.0.2.2/24}
balancer:
  backends: [{name: web01, address: "192.0.2.10:80"}]
vip:
  router_id: 51
  priority: 150
  address: 192.0.2.100/24
  advert_interval: 10ms
`

func testNode(t *testing.T, overlay string) *overlays.Node {
	t.Helper()
	n, err := overlays.Parse("lb01.yaml", []byte(overlay))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fakeSys is an operating system with one interface and no sockets.
type fakeSys struct {
	mu    sync.Mutex
	rx    chan Received
	sent  []Received
	addrs map[netip.Prefix]bool
	garps int
	up    bool
	open  bool
	// blocked are the addresses new connections are held back from;
	// blocks counts BlockNew calls.
	blocked []netip.Addr
	blocks  int
}

func newFakeSys() *fakeSys {
	return &fakeSys{rx: make(chan Received, 16), addrs: map[netip.Prefix]bool{}, up: true}
}

func (f *fakeSys) Open(ifname string, join bool) (netIO, error) {
	if ifname != "eth0" {
		return nil, errors.New("no such interface")
	}
	f.mu.Lock()
	f.open = true
	f.mu.Unlock()
	return &fakeIO{f: f, closed: make(chan struct{})}, nil
}

func (f *fakeSys) BlockNew(addrs []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked = append([]netip.Addr(nil), addrs...)
	f.blocks++
	return nil
}

func (f *fakeSys) UnblockNew() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked = nil
	return nil
}

func (f *fakeSys) LinkUp(string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.up, nil
}

func (f *fakeSys) holds(a netip.Prefix) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addrs[a]
}

type fakeIO struct {
	f      *fakeSys
	closed chan struct{}
	once   sync.Once
}

func (io *fakeIO) Recv() (Received, error) {
	select {
	case rx := <-io.f.rx:
		return rx, nil
	case <-io.closed:
		return Received{}, errors.New("closed")
	}
}

func (io *fakeIO) Send(_ uint8, b []byte, src, dst netip.Addr) error {
	io.f.mu.Lock()
	defer io.f.mu.Unlock()
	io.f.sent = append(io.f.sent, Received{Data: slices.Clone(b), Src: src, Dst: dst, TTL: TTL})
	return nil
}

func (io *fakeIO) AddAddrs(_ uint8, as []netip.Prefix) error {
	io.f.mu.Lock()
	defer io.f.mu.Unlock()
	for _, a := range as {
		io.f.addrs[a] = true
	}
	return nil
}

func (io *fakeIO) DelAddrs(_ uint8, as []netip.Prefix) error {
	io.f.mu.Lock()
	defer io.f.mu.Unlock()
	for _, a := range as {
		delete(io.f.addrs, a)
	}
	return nil
}

func (io *fakeIO) GARP(uint8, []netip.Prefix) error {
	io.f.mu.Lock()
	defer io.f.mu.Unlock()
	io.f.garps++
	return nil
}

func (io *fakeIO) Close() error {
	io.once.Do(func() { close(io.closed) })
	return nil
}

// waitFor polls cond (real time: the service runs on real timers) for at
// most two seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestServiceOverFakeSystem(t *testing.T) {
	fs := newFakeSys()
	svc, err := NewService(testNode(t, testOverlay), nil, Options{sys: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Health(); err == nil {
		t.Error("Health before Run = nil")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	vipP := netip.MustParsePrefix("192.0.2.100/24")
	state := func() string { return svc.Stats().Routers[0].State }
	waitFor(t, "master", func() bool { return state() == "MASTER" && fs.holds(vipP) })
	if err := svc.Health(); err != nil {
		t.Errorf("Health = %v", err)
	}

	// What we send parses back as our advertisement.
	fs.mu.Lock()
	first := fs.sent[0]
	fs.mu.Unlock()
	p, err := ParseFrom(first.Data, first.Src, first.Dst)
	if err != nil || p.VRID != 51 || p.Priority != 150 || p.Version != 3 || first.Dst != Group {
		t.Fatalf("sent %+v, %v", p, err)
	}

	// Bad input is counted and changes nothing.
	peer := netip.MustParseAddr("192.0.2.3")
	good := Packet{Version: 3, VRID: 51, Priority: 200, Interval: 10 * time.Millisecond, Addrs: []netip.Addr{vipP.Addr()}}
	pkt := func(p Packet) []byte { return p.Marshal(peer, Group) }
	bad := []Received{
		{Data: pkt(good), Src: peer, Dst: Group, TTL: 64},
		{Data: pkt(good)[:9], Src: peer, Dst: Group, TTL: 255},
		{Data: append(pkt(good)[:7], 0), Src: peer, Dst: Group, TTL: 255},
		{Data: pkt(Packet{Version: 3, VRID: 9, Priority: 200, Interval: time.Second, Addrs: good.Addrs}), Src: peer, Dst: Group, TTL: 255},
		{Data: pkt(Packet{Version: 2, VRID: 51, Priority: 200, Interval: time.Second, Addrs: good.Addrs}), Src: peer, Dst: Group, TTL: 255},
		{Data: []byte{0x21, 51, 200, 1, 1, 1, 0, 0, 192, 0, 2, 100, 's', 'e', 'c', 'r', 'e', 't', 0, 0}, Src: peer, Dst: Group, TTL: 255},
		{Data: pkt(Packet{Version: 3, VRID: 51, Priority: 200, Interval: time.Second, Addrs: []netip.Addr{peer}}), Src: peer, Dst: Group, TTL: 255},
	}
	for _, rx := range bad {
		fs.rx <- rx
	}
	waitFor(t, "drops counted", func() bool {
		st := svc.Stats()
		var n uint64
		for _, v := range st.Dropped {
			n += v
		}
		for _, v := range st.Routers[0].Dropped {
			n += v
		}
		return n == uint64(len(bad))
	})
	st := svc.Stats()
	if st.Routers[0].State != "MASTER" || st.Routers[0].Transitions != 2 || st.Dropped[DropTTL] != 1 || st.Dropped[DropVRID] != 1 ||
		st.Routers[0].Dropped[DropVersion] != 1 || st.Routers[0].Dropped[DropAddresses] != 1 {
		t.Errorf("after bad input: %+v", st)
	}

	// A better router takes over; ours gives the address up.
	fs.rx <- Received{Data: pkt(good), Src: peer, Dst: Group, TTL: 255}
	waitFor(t, "backup", func() bool { return state() == "BACKUP" && !fs.holds(vipP) })
	if err := svc.Handover(); err == nil {
		t.Error("Handover as backup = nil")
	}
	if c := svc.Stats().Routers[0]; c.Conflicts != 1 || c.Master != peer {
		t.Errorf("stats after takeover: %+v", c)
	}
	// It goes silent: ours is master again; then the link goes down.
	waitFor(t, "master again", func() bool { return state() == "MASTER" })
	fs.mu.Lock()
	fs.up = false
	fs.mu.Unlock()
	waitFor(t, "fault", func() bool { return state() == "FAULT" && !fs.holds(vipP) })
	if err := svc.Health(); err == nil || !strings.Contains(err.Error(), "link eth0 down") {
		t.Errorf("Health in fault = %v", err)
	}
	fs.mu.Lock()
	fs.up = true
	fs.mu.Unlock()
	waitFor(t, "master after fault", func() bool { return state() == "MASTER" })

	// The admin API's "handover" returns once the peer has taken over.
	var unknown *services.UnknownCommandError
	if _, err := svc.Control(ctx, "explode", ""); !errors.As(err, &unknown) {
		t.Errorf("Control(explode) = %v, want an unknown command", err)
	}
	handed := make(chan string, 1)
	go func() {
		msg, err := svc.Control(ctx, "handover", "")
		if err != nil {
			msg = "error: " + err.Error()
		}
		handed <- msg
	}()
	waitFor(t, "priority 0 sent", func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		last, err := ParseFrom(fs.sent[len(fs.sent)-1].Data, first.Src, Group)
		return err == nil && last.Priority == 0
	})
	select {
	case msg := <-handed:
		t.Fatalf("handover returned %q before the peer took over", msg)
	default:
	}
	fs.mu.Lock()
	blocked := fmt.Sprint(fs.blocked)
	fs.mu.Unlock()
	if blocked != "[192.0.2.100]" {
		t.Errorf("during the handover new connections are held back from %s, want [192.0.2.100]", blocked)
	}
	fs.rx <- Received{Data: pkt(Packet{Version: 3, VRID: 51, Priority: 100, Interval: 10 * time.Millisecond, Addrs: good.Addrs}), Src: peer, Dst: Group, TTL: 255}
	select {
	case msg := <-handed:
		if msg != "handed over: router 51 to 192.0.2.3" {
			t.Errorf("handover = %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handover did not return after the peer took over")
	}
	waitFor(t, "the hold lifted once the peer is master", func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return fs.blocked == nil
	})
	waitFor(t, "master after the peer went silent", func() bool { return state() == "MASTER" })

	// Reload: a priority change is applied, a new address is refused.
	if err := svc.Reload(testNode(t, strings.Replace(testOverlay, "priority: 150", "priority: 120", 1))); err != nil {
		t.Errorf("Reload priority: %v", err)
	}
	waitFor(t, "new priority", func() bool { return svc.Stats().Routers[0].Priority == 120 })
	if err := svc.Reload(testNode(t, strings.Replace(testOverlay, "192.0.2.100/24", "192.0.2.101/24", 1))); err == nil {
		t.Error("Reload with another VIP = nil")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if fs.holds(vipP) {
		t.Error("VIP still held after stop")
	}
	fs.mu.Lock()
	last := fs.sent[len(fs.sent)-1]
	fs.mu.Unlock()
	if p, _ := Parse(last.Data); p == nil || p.Priority != 0 {
		t.Errorf("last advertisement %+v, want priority 0", p)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tt := range []struct{ name, from, to, msg string }{
		{"outside subnet", "192.0.2.100/24", "198.51.100.100/24", "outside 192.0.2.0/24"},
		{"owner priority", "priority: 150", "priority: 255", "only for the node that owns"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := testNode(t, testOverlay)
			bad := testOverlay
			bad = strings.Replace(bad, tt.from, tt.to, 1)
			_, err := overlays.Parse("lb01.yaml", []byte(bad))
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Parse = %v, want %q", err, tt.msg)
			}
			// A node built in Go is validated by New too.
			n.VIP.Address = netip.MustParsePrefix("198.51.100.100/24")
			if _, err := New(n, nil); err == nil || !strings.Contains(err.Error(), "outside") {
				t.Errorf("New = %v", err)
			}
		})
	}
	if _, err := New(&overlays.Node{}, nil); err == nil {
		t.Error("New without vip section = nil")
	}
}
