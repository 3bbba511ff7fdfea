package netconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the Applier that changes the kernel's network state through
// netlink, in the network namespace of its handle.
type Netlink struct {
	h *netlink.Handle
}

// NewNetlink returns an Applier working through h; nil means the calling
// process's network namespace.
func NewNetlink(h *netlink.Handle) *Netlink {
	if h == nil {
		h = &netlink.Handle{}
	}
	return &Netlink{h: h}
}

func (n *Netlink) link(name string) (netlink.Link, error) {
	l, err := n.h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("%s: %w", name, ErrNoLink)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", name, err)
	}
	return l, nil
}

// Link reports whether the interface exists and is administratively up.
func (n *Netlink) Link(name string) (exists, up bool, err error) {
	l, err := n.link(name)
	if errors.Is(err, ErrNoLink) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, l.Attrs().Flags&net.FlagUp != 0, nil
}

// LinkUp sets the interface up.
func (n *Netlink) LinkUp(name string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	return n.h.LinkSetUp(l)
}

// Addrs returns the interface's IPv4 addresses.
func (n *Netlink) Addrs(name string) ([]netip.Prefix, error) {
	l, err := n.link(name)
	if err != nil {
		return nil, err
	}
	list, err := n.h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range list {
		if p, ok := prefixOf(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// prefixOf converts an address with mask, keeping the host bits.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := p.Addr().BitLen()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// AddAddr adds p to the interface.
func (n *Netlink) AddAddr(name string, p netip.Prefix) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	return n.h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)})
}

// DelAddr removes p from the interface.
func (n *Netlink) DelAddr(name string, p netip.Prefix) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	return n.h.AddrDel(l, &netlink.Addr{IPNet: ipNet(p)})
}

// DefaultRoutes returns the IPv4 default routes of the main table through
// the interface.
func (n *Netlink) DefaultRoutes(name string) ([]Route, error) {
	l, err := n.link(name)
	if err != nil {
		return nil, err
	}
	list, err := n.h.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	var out []Route
	for _, r := range list {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		gw, _ := netip.AddrFromSlice(r.Gw)
		out = append(out, Route{Dev: name, Gateway: gw.Unmap(), Metric: r.Priority})
	}
	return out, nil
}

func (n *Netlink) route(r Route) (*netlink.Route, error) {
	l, err := n.link(r.Dev)
	if err != nil {
		return nil, err
	}
	nr := &netlink.Route{
		LinkIndex: l.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Priority:  r.Metric,
		Table:     unix.RT_TABLE_MAIN,
	}
	if r.Gateway.IsValid() {
		nr.Gw = r.Gateway.AsSlice()
	}
	return nr, nil
}

// AddDefaultRoute adds r.
func (n *Netlink) AddDefaultRoute(r Route) error {
	nr, err := n.route(r)
	if err != nil {
		return err
	}
	return n.h.RouteAdd(nr)
}

// DelDefaultRoute removes r.
func (n *Netlink) DelDefaultRoute(r Route) error {
	nr, err := n.route(r)
	if err != nil {
		return err
	}
	return n.h.RouteDel(nr)
}
