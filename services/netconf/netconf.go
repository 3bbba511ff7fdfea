// Package netconf configures a node's network interfaces from its overlay:
// links up, static IPv4 addresses and default routes. It computes the
// desired state (Desired) and applies it through an Applier, so tests can
// use a fake that records operations; the Linux Applier uses netlink.
//
// Applying is idempotent: addresses and routes already there are left
// alone, and IPv4 addresses on a managed interface that the overlay does
// not list are removed, except those in Plan.Keep (the VIP, which the vip
// service adds and removes). IPv6 addresses are left as the kernel makes
// them.
package netconf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/piimage/piimage/overlays"
)

// ErrNoLink reports that an interface does not exist (yet): USB network
// adapters appear seconds after boot, so callers retry.
var ErrNoLink = errors.New("no such network interface")

// Metric of the default route through wlan0, so that eth0's (metric 0) wins
// when both have a gateway.
const WlanMetric = 600

// Interface is the desired state of one interface.
type Interface struct {
	Name string
	// Addrs are the IPv4 addresses with prefix length the interface must
	// have, and the only ones it may have (besides Plan.Keep).
	Addrs []netip.Prefix
	// Gateway is the default route's next hop; the zero Addr means none.
	Gateway netip.Addr
	// Metric is the default route's metric.
	Metric int
	// Optional interfaces are skipped when absent instead of failing.
	Optional bool
}

// Plan is the desired state of a node's interfaces, in the order to apply.
type Plan struct {
	Interfaces []Interface
	// Keep lists addresses never removed as stale.
	Keep []netip.Prefix
}

// Desired computes the plan for n: lo, then eth0, then wlan0 when the
// overlay has it (optional: Wi-Fi association is someone else's job).
func Desired(n *overlays.Node) Plan {
	p := Plan{Interfaces: []Interface{{Name: "lo", Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}}}
	if e := n.Interfaces.Eth0; e != nil {
		p.Interfaces = append(p.Interfaces, fromOverlay("eth0", e, 0, false))
	}
	if w := n.Interfaces.Wlan0; w != nil {
		p.Interfaces = append(p.Interfaces, fromOverlay("wlan0", w, WlanMetric, true))
	}
	if n.VIP != nil {
		for _, r := range n.VIP.AllRouters() {
			for _, a := range r.AllAddresses() {
				if a.IsValid() {
					p.Keep = append(p.Keep, a)
				}
			}
		}
	}
	return p
}

func fromOverlay(name string, i *overlays.Interface, metric int, optional bool) Interface {
	out := Interface{Name: name, Gateway: i.Gateway, Metric: metric, Optional: optional}
	if i.Address.IsValid() {
		out.Addrs = []netip.Prefix{i.Address}
	}
	return out
}

// Interface returns the plan's entry for name.
func (p Plan) Interface(name string) (Interface, bool) {
	for _, i := range p.Interfaces {
		if i.Name == name {
			return i, true
		}
	}
	return Interface{}, false
}

// Route is an IPv4 default route.
type Route struct {
	Dev     string
	Gateway netip.Addr
	Metric  int
}

// Applier reads and changes the system's network state.
type Applier interface {
	// Link reports whether the interface exists and is up.
	Link(name string) (exists, up bool, err error)
	LinkUp(name string) error
	// Addrs returns the interface's IPv4 addresses.
	Addrs(name string) ([]netip.Prefix, error)
	AddAddr(name string, p netip.Prefix) error
	DelAddr(name string, p netip.Prefix) error
	// DefaultRoutes returns the IPv4 default routes through the interface.
	DefaultRoutes(name string) ([]Route, error)
	AddDefaultRoute(r Route) error
	DelDefaultRoute(r Route) error
}

// Apply brings every interface of p to its desired state. It goes on past
// a failing interface and returns all errors joined; an absent required
// interface gives an error wrapping ErrNoLink, an absent optional one none.
func Apply(a Applier, p Plan) error {
	var errs []error
	for _, i := range p.Interfaces {
		if err := ApplyInterface(a, i, p.Keep); err != nil {
			if i.Optional && errors.Is(err, ErrNoLink) {
				continue
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ApplyInterface brings one interface to its desired state: link up, stale
// addresses removed (keep excepted), missing ones added, then the default
// route.
func ApplyInterface(a Applier, i Interface, keep []netip.Prefix) error {
	exists, up, err := a.Link(i.Name)
	if err != nil {
		return fmt.Errorf("configuring %s: %w", i.Name, err)
	}
	if !exists {
		return fmt.Errorf("configuring %s: %w", i.Name, ErrNoLink)
	}
	if !up {
		if err := a.LinkUp(i.Name); err != nil {
			return fmt.Errorf("setting %s up: %w", i.Name, err)
		}
	}
	have, err := a.Addrs(i.Name)
	if err != nil {
		return fmt.Errorf("listing addresses of %s: %w", i.Name, err)
	}
	for _, h := range have {
		if !h.Addr().Is4() || slices.Contains(i.Addrs, h) || slices.Contains(keep, h) {
			continue
		}
		if err := a.DelAddr(i.Name, h); err != nil {
			return fmt.Errorf("removing stale address %v from %s: %w", h, i.Name, err)
		}
	}
	for _, w := range i.Addrs {
		if slices.Contains(have, w) {
			continue
		}
		if err := a.AddAddr(i.Name, w); err != nil {
			return fmt.Errorf("adding address %v to %s: %w", w, i.Name, err)
		}
	}
	return applyRoute(a, i)
}

// applyRoute makes the interface's IPv4 default route be exactly the one
// through i.Gateway, or none.
func applyRoute(a Applier, i Interface) error {
	routes, err := a.DefaultRoutes(i.Name)
	if err != nil {
		return fmt.Errorf("listing default routes of %s: %w", i.Name, err)
	}
	want := Route{Dev: i.Name, Gateway: i.Gateway, Metric: i.Metric}
	found := false
	for _, r := range routes {
		if i.Gateway.IsValid() && r == want {
			found = true
			continue
		}
		if err := a.DelDefaultRoute(r); err != nil {
			return fmt.Errorf("removing stale default route via %v dev %s: %w", r.Gateway, r.Dev, err)
		}
	}
	if found || !i.Gateway.IsValid() {
		return nil
	}
	if err := a.AddDefaultRoute(want); err != nil {
		return fmt.Errorf("adding default route via %v dev %s: %w", i.Gateway, i.Name, err)
	}
	return nil
}

// String formats r as ip(8) would: "default via 192.168.1.1 dev eth0".
func (r Route) String() string {
	s := fmt.Sprintf("default via %v dev %s", r.Gateway, r.Dev)
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	return s
}
