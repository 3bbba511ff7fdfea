package overlays

import (
	"fmt"
	"net/netip"
	"net/url"
	"time"
)

// VIP configures the floating address that the load balancers share with
// VRRP. It is required on lbmaster and lbbackup nodes and refused on others.
//
// One VIP section is one virtual router; Routers adds more (each with its
// own router_id) for nodes that carry several floating addresses groups:
//
//	vip:
//	  router_id: 77
//	  priority: 101
//	  address: 192.168.1.15/24
//	  addresses: [192.168.1.16/24]   # more floating IPs of the same router
//	  advert_interval: 100ms
//	  track:
//	    balancer: {weight: 60}        # the local balancer; weight 0 forces backup
//	    http: [{url: "http://127.0.0.1:80/health", weight: 0}]
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
	// Addresses are further floating IPs of the same virtual router, each
	// inside the interface's subnet.
	Addresses []netip.Prefix `yaml:"addresses,omitempty"`
	// AdvertInterval is the advertisement interval, 10ms..40.95s in steps of
	// 10ms for VRRPv3, whole seconds 1s..255s for VRRPv2; 0 means
	// DefaultAdvertInterval (VRRPv3) or 1s (VRRPv2).
	AdvertInterval Duration `yaml:"advert_interval,omitempty"`
	// Peers are unicast peers; empty means multicast to 224.0.0.18.
	Peers []netip.Addr `yaml:"peers,omitempty"`
	// Version is the VRRP version: 3 (RFC 5798; the default) or 2 (RFC 3768,
	// for old peers). Every router of the group must use the same.
	Version int `yaml:"version,omitempty"`
	// Preempt lets this node take the VIP from a lower-priority master; nil
	// means true, as RFC 5798 and keepalived default.
	Preempt *bool `yaml:"preempt,omitempty"`
	// PreemptDelay holds off preemption for this long after the node starts
	// (or leaves a fault), 0..1h; 0 means none.
	PreemptDelay Duration `yaml:"preempt_delay,omitempty"`
	// GARP sets the gratuitous ARPs sent on becoming master.
	GARP GARP `yaml:"garp,omitempty"`
	// VirtualMAC, as keepalived's use_vmac, puts the VIP on a macvlan
	// device vrrp.<router_id> whose MAC is the VRRP virtual MAC
	// 00-00-5E-00-01-<router_id> while this node is master: clients' ARP
	// caches then stay right across a failover even if they miss the
	// gratuitous ARPs. Off by default; not for priority 255.
	VirtualMAC bool `yaml:"virtual_mac,omitempty"`
	// Track lists what lowers this node's priority or forces it to backup.
	Track Track `yaml:"track,omitempty"`
	// Routers are further virtual routers of this node, each a complete
	// section of its own with a distinct router_id (they cannot nest).
	Routers []VIP `yaml:"routers,omitempty"`
}

// GARP sets the gratuitous ARPs a new master sends for each VIP.
type GARP struct {
	// Count is how many are sent, 1..100; 0 means DefaultGARPCount.
	Count int `yaml:"count,omitempty"`
	// Interval is the spacing between them, 0..10s; 0 means
	// DefaultGARPInterval.
	Interval Duration `yaml:"interval,omitempty"`
}

// Track lists the checks a virtual router follows. A failing check with
// weight W lowers the priority by W (never below 1); a failing check with
// weight 0 puts the router in the fault state: it gives up the VIP and stays
// silent until the check passes. The carrying interface's own link is
// always tracked with weight 0.
type Track struct {
	// Balancer tracks the local load balancer's health; nil means not.
	Balancer *TrackBalancer `yaml:"balancer,omitempty"`
	// Interfaces tracks the link state of other interfaces.
	Interfaces []TrackInterface `yaml:"interfaces,omitempty"`
	// HTTP tracks URLs, answered with 2xx when healthy.
	HTTP []TrackHTTP `yaml:"http,omitempty"`
}

// TrackBalancer tracks the balancer running on the same node.
type TrackBalancer struct {
	// Weight is the priority lost while the balancer is unhealthy, 0..254;
	// 0 forces backup.
	Weight int `yaml:"weight,omitempty"`
	// Interval is how often it is asked, 10ms..1m; 0 means 500ms.
	Interval Duration `yaml:"interval,omitempty"`
}

// TrackInterface tracks an interface's link (up and with carrier).
type TrackInterface struct {
	// Name is "eth0" or "wlan0".
	Name string `yaml:"name"`
	// Weight is the priority lost while the link is down; 0 forces backup.
	Weight int `yaml:"weight,omitempty"`
}

// TrackHTTP is an HTTP check such as keepalived's HTTP_GET tracker.
type TrackHTTP struct {
	// URL is an http:// or https:// URL with a literal IP address.
	URL string `yaml:"url"`
	// Weight is the priority lost while the check fails; 0 forces backup.
	Weight int `yaml:"weight,omitempty"`
	// Interval is the time between checks, 10ms..1m; 0 means 1s.
	Interval Duration `yaml:"interval,omitempty"`
	// Timeout bounds one check, 0..1m; 0 means Interval.
	Timeout Duration `yaml:"timeout,omitempty"`
	// Fall is how many failures in a row make the check fail, 0..100;
	// 0 means 2.
	Fall int `yaml:"fall,omitempty"`
	// Rise is how many successes in a row make it pass again, 0..100;
	// 0 means 2.
	Rise int `yaml:"rise,omitempty"`
}

// Defaults of the vip section.
//
// DefaultAdvertInterval is 100ms rather than keepalived's 1s: a backup then
// notices a dead master within 3×100ms plus a skew of at most 100ms, which
// keeps the failover gap under half a second, at a cost of ten 54-byte
// packets a second per router, nothing for a Pi's CPU or a LAN.
const (
	DefaultVIPInterface   = "eth0"
	DefaultAdvertInterval = 100 * time.Millisecond
	DefaultVRRPVersion    = 3
	DefaultGARPCount      = 3
	DefaultGARPInterval   = 100 * time.Millisecond
)

// InterfaceOrDefault returns v.Interface, or DefaultVIPInterface when unset.
func (v *VIP) InterfaceOrDefault() string {
	if v == nil || v.Interface == "" {
		return DefaultVIPInterface
	}
	return v.Interface
}

// VersionOrDefault returns v.Version, or DefaultVRRPVersion when unset.
func (v *VIP) VersionOrDefault() int {
	if v == nil || v.Version == 0 {
		return DefaultVRRPVersion
	}
	return v.Version
}

// AdvertIntervalOrDefault returns v.AdvertInterval, or the default of the
// version when unset: DefaultAdvertInterval for VRRPv3, 1s for VRRPv2.
func (v *VIP) AdvertIntervalOrDefault() time.Duration {
	switch {
	case v != nil && v.AdvertInterval.Duration != 0:
		return v.AdvertInterval.Duration
	case v.VersionOrDefault() == 2:
		return time.Second
	}
	return DefaultAdvertInterval
}

// PreemptOrDefault returns *v.Preempt, or true when unset.
func (v *VIP) PreemptOrDefault() bool {
	return v == nil || v.Preempt == nil || *v.Preempt
}

// AllAddresses returns Address followed by Addresses.
func (v *VIP) AllAddresses() []netip.Prefix {
	return append([]netip.Prefix{v.Address}, v.Addresses...)
}

// AllRouters returns v followed by v.Routers.
func (v *VIP) AllRouters() []*VIP {
	out := []*VIP{v}
	for i := range v.Routers {
		out = append(out, &v.Routers[i])
	}
	return out
}

// CountOrDefault returns g.Count, or DefaultGARPCount when unset.
func (g GARP) CountOrDefault() int {
	if g.Count == 0 {
		return DefaultGARPCount
	}
	return g.Count
}

// IntervalOrDefault returns g.Interval, or DefaultGARPInterval when unset.
func (g GARP) IntervalOrDefault() time.Duration {
	if g.Interval.Duration == 0 {
		return DefaultGARPInterval
	}
	return g.Interval.Duration
}

func (v *VIP) validate(p *problems, path string, n *Node) {
	v.validateRouter(p, path, n)
	type use struct {
		path string
		id   int
	}
	ids := map[string]use{}          // interface/router_id -> first router
	addrs := map[netip.Addr]string{} // VIP -> field
	for i, r := range v.AllRouters() {
		rp := path
		if i > 0 {
			rp = fmt.Sprintf("%s.routers[%d]", path, i-1)
			if len(r.Routers) > 0 {
				p.addf(rp+".routers", "routers cannot nest; list every router under %s.routers", path)
			}
			r.validateRouter(p, rp, n)
		}
		key := fmt.Sprintf("%s/%d", r.InterfaceOrDefault(), r.RouterID)
		if u, dup := ids[key]; dup && r.RouterID != 0 {
			p.addf(rp+".router_id", "%d clashes with %s on %s; each virtual router needs its own router_id", r.RouterID, u.path, r.InterfaceOrDefault())
		} else {
			ids[key] = use{rp + ".router_id", r.RouterID}
		}
		for j, a := range r.AllAddresses() {
			ap := rp + ".address"
			if j > 0 {
				ap = fmt.Sprintf("%s.addresses[%d]", rp, j-1)
			}
			if !a.IsValid() {
				continue
			}
			if other, dup := addrs[a.Addr()]; dup {
				p.addf(ap, "%s is also %s; a floating IP belongs to one virtual router", a.Addr(), other)
			} else {
				addrs[a.Addr()] = ap
			}
		}
	}
}

// validateRouter checks one virtual router's fields.
func (v *VIP) validateRouter(p *problems, path string, n *Node) {
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
	v.validateAddress(p, path+".address", v.Address, n, iface, true)
	for i, a := range v.Addresses {
		v.validateAddress(p, fmt.Sprintf("%s.addresses[%d]", path, i), a, n, iface, false)
	}
	switch {
	case v.Priority < 1 || v.Priority > 255:
		p.addf(path+".priority", "%d is out of range; use 1 to 254", v.Priority)
	case v.Priority == 255 && (!v.Address.IsValid() || !ownsAddr(n, v.Address.Addr())):
		p.addf(path+".priority", "255 is only for the node that owns the address; use 1 to 254")
	}
	switch v.Version {
	case 0, 3:
		if d := v.AdvertInterval.Duration; d != 0 && (d < 10*time.Millisecond || d > 4095*10*time.Millisecond || d%(10*time.Millisecond) != 0) {
			p.addf(path+".advert_interval", "%s is out of range; use 10ms to 40.95s in steps of 10ms", d)
		}
	case 2:
		if d := v.AdvertInterval.Duration; d != 0 && (d < time.Second || d > 255*time.Second || d%time.Second != 0) {
			p.addf(path+".advert_interval", "%s does not fit VRRPv2; use whole seconds 1s to 255s (or version 3)", d)
		}
	default:
		p.addf(path+".version", "%d is not a VRRP version; use 3 (or 2 for old peers)", v.Version)
	}
	if d := v.PreemptDelay.Duration; d < 0 || d > time.Hour {
		p.addf(path+".preempt_delay", "%s is out of range 0..1h", d)
	}
	if v.PreemptDelay.Duration != 0 && !v.PreemptOrDefault() {
		p.addf(path+".preempt_delay", "has no effect with preempt: false")
	}
	if v.VirtualMAC && v.Priority == 255 {
		p.addf(path+".virtual_mac", "the address owner (priority 255) keeps its own MAC; drop virtual_mac or lower the priority")
	}
	if c := v.GARP.Count; c < 0 || c > 100 {
		p.addf(path+".garp.count", "%d is out of range 1..100", c)
	}
	if d := v.GARP.Interval.Duration; d < 0 || d > 10*time.Second {
		p.addf(path+".garp.interval", "%s is out of range 0..10s", d)
	}
	v.validatePeers(p, path, n)
	v.Track.validate(p, path+".track", n)
}

func (v *VIP) validatePeers(p *problems, path string, n *Node) {
	seen := map[netip.Addr]int{}
	for i, a := range v.Peers {
		pp := fmt.Sprintf("%s.peers[%d]", path, i)
		if msg := checkUnicast4(a); msg != "" {
			p.addf(pp, "%s", msg)
			continue
		}
		if ownsAddr(n, a) {
			p.addf(pp, "%s is this node's own address", a)
		} else {
			for _, va := range v.AllAddresses() {
				if va.IsValid() && a == va.Addr() {
					p.addf(pp, "%s is a VIP itself", a)
				}
			}
		}
		if j, ok := seen[a]; ok {
			p.addf(pp, "%s is listed twice (also peers[%d])", a, j)
		}
		seen[a] = i
	}
}

// validateAddress checks one floating IP against the interface carrying it.
func (v *VIP) validateAddress(p *problems, ap string, pfx netip.Prefix, n *Node, iface *Interface, required bool) {
	if !pfx.IsValid() {
		if required {
			p.addf(ap, "required, the floating IP with prefix length like 192.168.1.15/24")
		}
		return
	}
	if msg := checkHostPrefix(pfx); msg != "" {
		p.addf(ap, "%s", msg)
		return
	}
	a := pfx.Addr()
	if iface == nil || !iface.Address.IsValid() || checkHostPrefix(iface.Address) != "" {
		return // the interface's problem is reported on its own
	}
	subnet := iface.Address.Masked()
	switch {
	case !subnet.Contains(a):
		p.addf(ap, "%s is outside %s, the subnet of %s", a, subnet, v.InterfaceOrDefault())
	case pfx.Bits() != iface.Address.Bits() && pfx.Bits() != 32:
		p.addf(ap, "prefix length /%d differs from %s's /%d (use /%d or /32)",
			pfx.Bits(), v.InterfaceOrDefault(), iface.Address.Bits(), iface.Address.Bits())
	case ownsAddr(n, a) && v.Priority != 255:
		p.addf(ap, "%s is this node's own address; the VIP must be a spare address of the subnet", a)
	default:
		if msg := checkNotNetOrBroadcast(a, iface.Address); msg != "" {
			p.addf(ap, "%s", msg)
		}
	}
}

func (t *Track) validate(p *problems, path string, n *Node) {
	checkWeight := func(field string, w int) {
		if w < 0 || w > 254 {
			p.addf(field, "%d is out of range; use 1 to 254, or 0 to force backup", w)
		}
	}
	checkEvery := func(field string, d time.Duration) {
		if d != 0 && (d < 10*time.Millisecond || d > time.Minute) {
			p.addf(field, "%s is out of range 10ms..1m", d)
		}
	}
	if b := t.Balancer; b != nil {
		checkWeight(path+".balancer.weight", b.Weight)
		checkEvery(path+".balancer.interval", b.Interval.Duration)
	}
	for i, ti := range t.Interfaces {
		tp := fmt.Sprintf("%s.interfaces[%d]", path, i)
		if ti.Name != "eth0" && ti.Name != "wlan0" {
			p.addf(tp+".name", "%q is not an interface; use eth0 or wlan0", ti.Name)
		} else if n.Interface(ti.Name) == nil {
			p.addf(tp+".name", "%s is not configured under interfaces", ti.Name)
		}
		checkWeight(tp+".weight", ti.Weight)
	}
	for i, h := range t.HTTP {
		hp := fmt.Sprintf("%s.http[%d]", path, i)
		u, err := url.Parse(h.URL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			p.addf(hp+".url", "%q is not an http:// or https:// URL", h.URL)
		default:
			if _, err := netip.ParseAddr(u.Hostname()); err != nil {
				p.addf(hp+".url", "%q: use a literal IP address (checks must not wait for DNS)", h.URL)
			}
		}
		checkWeight(hp+".weight", h.Weight)
		checkEvery(hp+".interval", h.Interval.Duration)
		if d := h.Timeout.Duration; d < 0 || d > time.Minute {
			p.addf(hp+".timeout", "%s is out of range 0..1m", d)
		}
		if h.Fall < 0 || h.Fall > 100 {
			p.addf(hp+".fall", "%d is out of range 1..100", h.Fall)
		}
		if h.Rise < 0 || h.Rise > 100 {
			p.addf(hp+".rise", "%d is out of range 1..100", h.Rise)
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
