package netconf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/piimage/piimage/overlays"
)

// recorder wraps an Applier and records every change as an ip(8)-like line.
type recorder struct {
	Applier
	ops []string
}

func (r *recorder) LinkUp(name string) error {
	r.ops = append(r.ops, "link "+name+" up")
	return r.Applier.LinkUp(name)
}

func (r *recorder) AddAddr(name string, p netip.Prefix) error {
	r.ops = append(r.ops, fmt.Sprintf("addr add %v dev %s", p, name))
	return r.Applier.AddAddr(name, p)
}

func (r *recorder) DelAddr(name string, p netip.Prefix) error {
	r.ops = append(r.ops, fmt.Sprintf("addr del %v dev %s", p, name))
	return r.Applier.DelAddr(name, p)
}

func (r *recorder) AddDefaultRoute(rt Route) error {
	r.ops = append(r.ops, "route add "+rt.String())
	return r.Applier.AddDefaultRoute(rt)
}

func (r *recorder) DelDefaultRoute(rt Route) error {
	r.ops = append(r.ops, "route del "+rt.String())
	return r.Applier.DelDefaultRoute(rt)
}

// fakeLink is one interface of fakeOS.
type fakeLink struct {
	up     bool
	addrs  []netip.Prefix
	routes []Route
}

// fakeOS is an in-memory network stack.
type fakeOS struct {
	links map[string]*fakeLink
}

func (f *fakeOS) get(name string) (*fakeLink, error) {
	l, ok := f.links[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrNoLink)
	}
	return l, nil
}

func (f *fakeOS) Link(name string) (bool, bool, error) {
	l, ok := f.links[name]
	return ok, ok && l.up, nil
}

func (f *fakeOS) LinkUp(name string) error {
	l, err := f.get(name)
	if err == nil {
		l.up = true
		if name == "lo" && !slices.Contains(l.addrs, netip.MustParsePrefix("127.0.0.1/8")) {
			l.addrs = append(l.addrs, netip.MustParsePrefix("127.0.0.1/8")) // as the kernel does
		}
	}
	return err
}

func (f *fakeOS) Addrs(name string) ([]netip.Prefix, error) {
	l, err := f.get(name)
	if err != nil {
		return nil, err
	}
	var v4 []netip.Prefix
	for _, a := range l.addrs {
		if a.Addr().Is4() {
			v4 = append(v4, a)
		}
	}
	return v4, nil
}

func (f *fakeOS) AddAddr(name string, p netip.Prefix) error {
	l, err := f.get(name)
	if err == nil {
		l.addrs = append(l.addrs, p)
	}
	return err
}

func (f *fakeOS) DelAddr(name string, p netip.Prefix) error {
	l, err := f.get(name)
	if err == nil {
		l.addrs = slices.DeleteFunc(l.addrs, func(x netip.Prefix) bool { return x == p })
	}
	return err
}

func (f *fakeOS) DefaultRoutes(name string) ([]Route, error) {
	l, err := f.get(name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(l.routes), nil
}

func (f *fakeOS) AddDefaultRoute(r Route) error {
	l, err := f.get(r.Dev)
	if err == nil {
		l.routes = append(l.routes, r)
	}
	return err
}

func (f *fakeOS) DelDefaultRoute(r Route) error {
	l, err := f.get(r.Dev)
	if err == nil {
		l.routes = slices.DeleteFunc(l.routes, func(x Route) bool { return x == r })
	}
	return err
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func node(eth0, gw string, wlan0 string) *overlays.Node {
	n := &overlays.Node{Hostname: "pi1", Role: "web"}
	if eth0 != "" {
		n.Interfaces.Eth0 = &overlays.Interface{Address: pfx(eth0)}
		if gw != "" {
			n.Interfaces.Eth0.Gateway = addr(gw)
		}
	}
	if wlan0 != "" {
		n.Interfaces.Wlan0 = &overlays.Interface{Address: pfx(wlan0), Gateway: addr("192.168.2.1")}
	}
	return n
}

func TestApply(t *testing.T) {
	fresh := func() map[string]*fakeLink {
		return map[string]*fakeLink{"lo": {}, "eth0": {addrs: []netip.Prefix{pfx("fe80::1/64")}}}
	}
	tests := []struct {
		name    string
		links   map[string]*fakeLink
		node    *overlays.Node
		keepVIP string
		want    string
		wantErr error
	}{
		{
			name:  "fresh boot",
			links: fresh(),
			node:  node("192.168.1.14/24", "192.168.1.1", ""),
			want: `link lo up
link eth0 up
addr add 192.168.1.14/24 dev eth0
route add default via 192.168.1.1 dev eth0`,
		},
		{
			name: "already configured: nothing to do",
			links: map[string]*fakeLink{
				"lo":   {up: true, addrs: []netip.Prefix{pfx("127.0.0.1/8")}},
				"eth0": {up: true, addrs: []netip.Prefix{pfx("192.168.1.14/24")}, routes: []Route{{Dev: "eth0", Gateway: addr("192.168.1.1")}}},
			},
			node: node("192.168.1.14/24", "192.168.1.1", ""),
			want: ``,
		},
		{
			name: "stale address and route replaced, VIP kept",
			links: map[string]*fakeLink{
				"lo": {up: true, addrs: []netip.Prefix{pfx("127.0.0.1/8")}},
				"eth0": {up: true,
					addrs:  []netip.Prefix{pfx("192.168.1.99/24"), pfx("192.168.1.50/24"), pfx("fe80::1/64")},
					routes: []Route{{Dev: "eth0", Gateway: addr("192.168.1.254")}}},
			},
			node:    node("192.168.1.14/24", "192.168.1.1", ""),
			keepVIP: "192.168.1.50/24",
			want: `addr del 192.168.1.99/24 dev eth0
addr add 192.168.1.14/24 dev eth0
route del default via 192.168.1.254 dev eth0
route add default via 192.168.1.1 dev eth0`,
		},
		{
			name:  "same address, other prefix length is stale",
			links: map[string]*fakeLink{"lo": {up: true, addrs: []netip.Prefix{pfx("127.0.0.1/8")}}, "eth0": {up: true, addrs: []netip.Prefix{pfx("192.168.1.14/16")}}},
			node:  node("192.168.1.14/24", "", ""),
			want: `addr del 192.168.1.14/16 dev eth0
addr add 192.168.1.14/24 dev eth0`,
		},
		{
			name: "no gateway removes a default route",
			links: map[string]*fakeLink{"lo": {up: true, addrs: []netip.Prefix{pfx("127.0.0.1/8")}},
				"eth0": {up: true, addrs: []netip.Prefix{pfx("10.0.0.2/8")}, routes: []Route{{Dev: "eth0", Gateway: addr("10.0.0.1")}}}},
			node: node("10.0.0.2/8", "", ""),
			want: `route del default via 10.0.0.1 dev eth0`,
		},
		{
			name:  "wlan0 absent is skipped",
			links: fresh(),
			node:  node("192.168.1.14/24", "", "192.168.2.14/24"),
			want: `link lo up
link eth0 up
addr add 192.168.1.14/24 dev eth0`,
		},
		{
			name:  "wlan0 present gets a higher metric",
			links: map[string]*fakeLink{"lo": {}, "eth0": {}, "wlan0": {}},
			node:  node("192.168.1.14/24", "192.168.1.1", "192.168.2.14/24"),
			want: `link lo up
link eth0 up
addr add 192.168.1.14/24 dev eth0
route add default via 192.168.1.1 dev eth0
link wlan0 up
addr add 192.168.2.14/24 dev wlan0
route add default via 192.168.2.1 dev wlan0 metric 600`,
		},
		{
			name:    "eth0 absent is an error to retry",
			links:   map[string]*fakeLink{"lo": {}},
			node:    node("192.168.1.14/24", "192.168.1.1", ""),
			want:    `link lo up`,
			wantErr: ErrNoLink,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os := &fakeOS{links: tt.links}
			rec := &recorder{Applier: os}
			plan := Desired(tt.node)
			if tt.keepVIP != "" {
				plan.Keep = append(plan.Keep, pfx(tt.keepVIP))
			}
			err := Apply(rec, plan)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("Apply error = %v, want %v", err, tt.wantErr)
			}
			if got := strings.Join(rec.ops, "\n"); got != tt.want {
				t.Errorf("ops:\n%s\nwant:\n%s", got, tt.want)
			}
			if tt.wantErr != nil {
				return
			}
			rec.ops = nil
			if err := Apply(rec, plan); err != nil {
				t.Fatal(err)
			}
			if len(rec.ops) != 0 {
				t.Errorf("second Apply was not idempotent:\n%s", strings.Join(rec.ops, "\n"))
			}
		})
	}
}

func TestDesiredKeepsVIP(t *testing.T) {
	n := node("192.168.1.11/24", "192.168.1.1", "")
	n.VIP = &overlays.VIP{Address: pfx("192.168.1.10/24"), Addresses: []netip.Prefix{pfx("192.168.1.12/24")},
		Routers: []overlays.VIP{{Address: pfx("192.168.1.13/24")}}}
	p := Desired(n)
	if !slices.Equal(p.Keep, []netip.Prefix{pfx("192.168.1.10/24"), pfx("192.168.1.12/24"), pfx("192.168.1.13/24")}) {
		t.Errorf("Keep = %v, want the VIP", p.Keep)
	}
	if i, ok := p.Interface("eth0"); !ok || i.Addrs[0] != pfx("192.168.1.11/24") {
		t.Errorf("eth0 = %+v, %v", i, ok)
	}
}
