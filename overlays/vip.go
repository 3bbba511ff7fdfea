package overlays

import (
	"fmt"
	"net/netip"
	"time"
)

// VIP configures the floating address that the load balancers share with
// VRRP. It is required on lbmaster and lbbackup nodes and refused on others.
type VIP struct {
	// Interface carries the VIP: "eth0" or "wlan0"; "" means eth0.
	Interface string `yaml:"interface,omitempty"`
	// RouterID is the VRRP virtual router id, 1..255; the same on every
	// load balancer of the cluster.
	RouterID int `yaml:"router_id"`
	// Priority is the VRRP priority, 1..254; 255 only when the node owns
	// the address. The lbmaster has the highest.
	Priority int `yaml:"priority"`
	// Address is the floating IP with its prefix length, inside the
	// interface's subnet.
	Address netip.Prefix `yaml:"address"`
	// AdvertInterval is the advertisement interval, 10ms..40.95s in steps of
	// 10ms (VRRPv3 centiseconds); 0 means DefaultAdvertInterval.
	AdvertInterval Duration `yaml:"advert_interval,omitempty"`
	// Peers are unicast peers; empty means multicast to 224.0.0.18.
	Peers []netip.Addr `yaml:"peers,omitempty"`
}

// Defaults of the vip section.
const (
	DefaultVIPInterface   = "eth0"
	DefaultAdvertInterval = time.Second
)

// InterfaceOrDefault returns v.Interface, or DefaultVIPInterface when unset.
func (v *VIP) InterfaceOrDefault() string {
	if v == nil || v.Interface == "" {
		return DefaultVIPInterface
	}
	return v.Interface
}

// AdvertIntervalOrDefault returns v.AdvertInterval, or DefaultAdvertInterval
// when unset.
func (v *VIP) AdvertIntervalOrDefault() time.Duration {
	if v == nil || v.AdvertInterval.Duration == 0 {
		return DefaultAdvertInterval
	}
	return v.AdvertInterval.Duration
}

func (v *VIP) validate(p *problems, path string, n *Node) {
	var iface *Interface
	switch v.Interface {
	case "", "eth0", "wlan0":
		iface = n.Interface(v.InterfaceOrDefault())
		if iface == nil {
			p.addf(path+".interface", "%s is not configured under interfaces", v.InterfaceOrDefault())
		}
	default:
		p.addf(path+".interface", "%q is not an interface; use eth0 or wlan0", v.Interface)
	}
	if v.RouterID < 1 || v.RouterID > 255 {
		p.addf(path+".router_id", "%d is out of range; use 1 to 255", v.RouterID)
	}
	v.validateAddress(p, path, n, iface)
	switch {
	case v.Priority < 1 || v.Priority > 255:
		p.addf(path+".priority", "%d is out of range; use 1 to 254", v.Priority)
	case v.Priority == 255 && (!v.Address.IsValid() || !ownsAddr(n, v.Address.Addr())):
		p.addf(path+".priority", "255 is only for the node that owns the address; use 1 to 254")
	}
	if d := v.AdvertInterval.Duration; d != 0 {
		if d < 10*time.Millisecond || d > 4095*10*time.Millisecond || d%(10*time.Millisecond) != 0 {
			p.addf(path+".advert_interval", "%s is out of range; use 10ms to 40.95s in steps of 10ms", d)
		}
	}
	seen := map[netip.Addr]int{}
	for i, a := range v.Peers {
		pp := fmt.Sprintf("%s.peers[%d]", path, i)
		if msg := checkUnicast4(a); msg != "" {
			p.addf(pp, "%s", msg)
			continue
		}
		if ownsAddr(n, a) {
			p.addf(pp, "%s is this node's own address", a)
		} else if v.Address.IsValid() && a == v.Address.Addr() {
			p.addf(pp, "%s is the VIP itself", a)
		}
		if j, ok := seen[a]; ok {
			p.addf(pp, "%s is listed twice (also peers[%d])", a, j)
		}
		seen[a] = i
	}
}

// validateAddress checks the floating IP against the interface carrying it.
func (v *VIP) validateAddress(p *problems, path string, n *Node, iface *Interface) {
	ap := path + ".address"
	if !v.Address.IsValid() {
		p.addf(ap, "required, the floating IP with prefix length like 192.168.1.15/24")
		return
	}
	if msg := checkHostPrefix(v.Address); msg != "" {
		p.addf(ap, "%s", msg)
		return
	}
	a := v.Address.Addr()
	if iface == nil || !iface.Address.IsValid() || checkHostPrefix(iface.Address) != "" {
		return // the interface's problem is reported on its own
	}
	subnet := iface.Address.Masked()
	switch {
	case !subnet.Contains(a):
		p.addf(ap, "%s is outside %s, the subnet of %s", a, subnet, v.InterfaceOrDefault())
	case v.Address.Bits() != iface.Address.Bits() && v.Address.Bits() != 32:
		p.addf(ap, "prefix length /%d differs from %s's /%d (use /%d or /32)",
			v.Address.Bits(), v.InterfaceOrDefault(), iface.Address.Bits(), iface.Address.Bits())
	case ownsAddr(n, a) && v.Priority != 255:
		p.addf(ap, "%s is this node's own address; the VIP must be a spare address of the subnet", a)
	default:
		if msg := checkNotNetOrBroadcast(a, iface.Address); msg != "" {
			p.addf(ap, "%s", msg)
		}
	}
}

// ownsAddr reports whether a is one of n's interface addresses.
func ownsAddr(n *Node, a netip.Addr) bool {
	for _, fa := range n.addresses() {
		if fa.addr == a {
			return true
		}
	}
	return false
}
