package overlays

import (
	"fmt"
	"net/netip"
)

// Firewall configures the node's inbound packet filter, which the init
// installs with nftables before any service starts. Everything inbound is
// dropped except: loopback, replies to the node's own connections, IGMP,
// rate-limited ICMP echo, the role's public ports (web: web.port and
// web.tls.port; load balancers: balancer.port, balancer.tls.port and
// balancer.stats.port), VRRP from the other load balancers, the mirror
// port on the mirror's primary from the other web nodes, and the admin
// port from the management networks. Every field is optional:
//
//	firewall:
//	  admin_from: [192.168.1.0/24]     # the default: eth0's subnet
//	  vrrp_peers: [192.168.1.13]       # load balancers: the other LB
//	  mirror_from: [192.168.1.11/32]   # mirror primary: the other web nodes
//	  rate_limit: {per_second: 100, burst: 200, exempt: [192.168.1.0/24]}
//	  icmp_per_second: 10
type Firewall struct {
	// Disabled installs no firewall at all (every port of every service
	// is then open to everyone). Meant for debugging only.
	Disabled bool `yaml:"disabled,omitempty"`
	// AdminFrom are the management networks allowed to reach the admin
	// port; empty means eth0's subnet.
	AdminFrom []netip.Prefix `yaml:"admin_from,omitempty"`
	// VRRPPeers are the addresses of the other load balancers, the only
	// sources of VRRP packets accepted (load balancers only). Empty means
	// vip.peers (of every router) when those are set, else every address of
	// the subnets carrying a VIP, which lets any host there disturb the
	// VIP: list the other load balancer here.
	VRRPPeers []netip.Addr `yaml:"vrrp_peers,omitempty"`
	// MirrorFrom are the web nodes allowed to reach the mirror port of the
	// mirror's primary (web nodes only); empty means eth0's subnet. The
	// mirror also authenticates every peer with mutual TLS.
	MirrorFrom []netip.Prefix `yaml:"mirror_from,omitempty"`
	// RateLimit bounds new connections per source address on the public
	// ports.
	RateLimit RateLimit `yaml:"rate_limit,omitempty"`
	// ICMPPerSecond bounds the echo requests answered, from all sources
	// together, 1..10000; 0 means DefaultICMPPerSecond. The burst is twice
	// the rate.
	ICMPPerSecond int `yaml:"icmp_per_second,omitempty"`
}

// RateLimit bounds the rate of new connections (TCP SYNs) that one source
// address may open to the public ports; SYNs over the limit are dropped,
// and the client's TCP retries a second later.
type RateLimit struct {
	// PerSecond is the sustained rate per source, 1..100000; 0 means
	// DefaultRateLimitPerSecond.
	PerSecond int `yaml:"per_second,omitempty"`
	// Burst is how many new connections a quiet source may open at once,
	// PerSecond..1000000; 0 means twice PerSecond.
	Burst int `yaml:"burst,omitempty"`
	// Exempt are sources that are never limited; empty means eth0's subnet
	// on web nodes (where the load balancers open their connections to
	// the backends from) and none on load balancers.
	Exempt []netip.Prefix `yaml:"exempt,omitempty"`
}

// Defaults of the firewall section.
const (
	DefaultRateLimitPerSecond = 100
	DefaultICMPPerSecond      = 10
)

// FirewallEnabled reports whether the node installs a firewall: unless the
// firewall section says disabled.
func (n *Node) FirewallEnabled() bool {
	return n.Firewall == nil || !n.Firewall.Disabled
}

// AdminFromOrDefault returns the management networks: f.AdminFrom, or
// eth0's subnet.
func (n *Node) AdminFromOrDefault() []netip.Prefix {
	if f := n.Firewall; f != nil && len(f.AdminFrom) > 0 {
		return maskAll(f.AdminFrom)
	}
	return n.eth0Subnet()
}

// MirrorFromOrDefault returns the sources allowed to the mirror port:
// f.MirrorFrom, or eth0's subnet.
func (n *Node) MirrorFromOrDefault() []netip.Prefix {
	if f := n.Firewall; f != nil && len(f.MirrorFrom) > 0 {
		return maskAll(f.MirrorFrom)
	}
	return n.eth0Subnet()
}

// VRRPSources returns the sources VRRP is accepted from and whether they
// are named addresses (firewall.vrrp_peers or vip.peers, as /32 prefixes)
// rather than the fallback of whole subnets carrying a VIP.
func (n *Node) VRRPSources() (srcs []netip.Prefix, named bool) {
	if f := n.Firewall; f != nil && len(f.VRRPPeers) > 0 {
		for _, a := range f.VRRPPeers {
			srcs = appendUnique(srcs, netip.PrefixFrom(a, 32))
		}
		return srcs, true
	}
	if n.VIP == nil {
		return nil, false
	}
	for _, r := range n.VIP.AllRouters() {
		for _, a := range r.Peers {
			srcs = appendUnique(srcs, netip.PrefixFrom(a, 32))
		}
	}
	if len(srcs) > 0 {
		return srcs, true
	}
	for _, r := range n.VIP.AllRouters() {
		if i := n.Interface(r.InterfaceOrDefault()); i != nil && i.Address.IsValid() {
			srcs = appendUnique(srcs, i.Address.Masked())
		}
	}
	return srcs, false
}

// RateLimitOrDefault returns the rate limit with its defaults filled in.
func (n *Node) RateLimitOrDefault() RateLimit {
	var r RateLimit
	if n.Firewall != nil {
		r = n.Firewall.RateLimit
		r.Exempt = maskAll(r.Exempt)
	}
	if r.PerSecond == 0 {
		r.PerSecond = DefaultRateLimitPerSecond
	}
	if r.Burst == 0 {
		r.Burst = 2 * r.PerSecond
	}
	if len(r.Exempt) == 0 && n.Role == RoleWeb {
		r.Exempt = n.eth0Subnet()
	}
	return r
}

// ICMPPerSecondOrDefault returns the ICMP echo rate.
func (n *Node) ICMPPerSecondOrDefault() int {
	if n.Firewall == nil || n.Firewall.ICMPPerSecond == 0 {
		return DefaultICMPPerSecond
	}
	return n.Firewall.ICMPPerSecond
}

func (n *Node) eth0Subnet() []netip.Prefix {
	if a := n.Eth0Address(); a.IsValid() {
		return []netip.Prefix{a.Masked()}
	}
	return nil
}

func maskAll(in []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range in {
		out = appendUnique(out, p.Masked())
	}
	return out
}

func appendUnique(list []netip.Prefix, p netip.Prefix) []netip.Prefix {
	for _, q := range list {
		if q == p {
			return list
		}
	}
	return append(list, p)
}

// validateFirewall checks the firewall section, if any.
func (n *Node) validateFirewall(p *problems) {
	f := n.Firewall
	if f == nil {
		return
	}
	const path = "firewall"
	checkSources(p, path+".admin_from", f.AdminFrom)
	checkSources(p, path+".mirror_from", f.MirrorFrom)
	checkSources(p, path+".rate_limit.exempt", f.RateLimit.Exempt)
	if len(f.VRRPPeers) > 0 && !n.IsLB() {
		p.addf(path+".vrrp_peers", "only load balancers speak VRRP; remove this from a %s node", n.Role)
	}
	if len(f.MirrorFrom) > 0 && n.IsLB() {
		p.addf(path+".mirror_from", "only web nodes mirror; remove this from a %s node", n.Role)
	}
	seen := map[netip.Addr]int{}
	for i, a := range f.VRRPPeers {
		pp := fmt.Sprintf("%s.vrrp_peers[%d]", path, i)
		if msg := checkUnicast4(a); msg != "" {
			p.addf(pp, "%s", msg)
			continue
		}
		if j, dup := seen[a]; dup {
			p.addf(pp, "%s is listed twice (also vrrp_peers[%d])", a, j)
			continue
		}
		seen[a] = i
		if ownsAddr(n, a) {
			p.addf(pp, "%s is this node's own address; list the other load balancer", a)
			continue
		}
		if n.VIP != nil {
			for _, r := range n.VIP.AllRouters() {
				for _, va := range r.AllAddresses() {
					if va.IsValid() && va.Addr() == a {
						p.addf(pp, "%s is a VIP; list the other load balancer's own address", a)
					}
				}
			}
		}
	}
	r := f.RateLimit
	switch {
	case r.PerSecond < 0 || r.PerSecond > 100000:
		p.addf(path+".rate_limit.per_second", "%d is out of range 1..100000 (0 means %d)", r.PerSecond, DefaultRateLimitPerSecond)
	case r.Burst < 0 || r.Burst > 1000000:
		p.addf(path+".rate_limit.burst", "%d is out of range 0..1000000", r.Burst)
	case r.Burst != 0 && r.Burst < max(r.PerSecond, 1):
		p.addf(path+".rate_limit.burst", "%d is below per_second; a burst of at least the rate is needed", r.Burst)
	}
	if f.ICMPPerSecond < 0 || f.ICMPPerSecond > 10000 {
		p.addf(path+".icmp_per_second", "%d is out of range 1..10000 (0 means %d)", f.ICMPPerSecond, DefaultICMPPerSecond)
	}
}

// checkSources checks a list of IPv4 source networks.
func checkSources(p *problems, path string, list []netip.Prefix) {
	seen := map[netip.Prefix]int{}
	for i, pfx := range list {
		pp := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case !pfx.IsValid():
			p.addf(pp, "required, an IPv4 network like 192.168.1.0/24 or an address like 192.168.1.5/32")
			continue
		case !pfx.Addr().Is4():
			p.addf(pp, "%s is not IPv4", pfx)
			continue
		case pfx.Bits() == 0:
			p.addf(pp, "%s matches every address; name the networks (or turn the firewall off)", pfx)
			continue
		case pfx.Addr().IsLoopback():
			p.addf(pp, "%s is loopback, which is always allowed", pfx)
			continue
		case pfx.Addr().IsMulticast():
			p.addf(pp, "%s is multicast, never a source", pfx)
			continue
		}
		if j, dup := seen[pfx.Masked()]; dup {
			p.addf(pp, "%s is listed twice (also [%d])", pfx, j)
			continue
		}
		seen[pfx.Masked()] = i
	}
}
