// Package firewall turns a node's overlay into the nftables ruleset the init
// installs before any service starts, and installs it.
//
// Generate is a pure function from the overlay to a Ruleset, a small data
// structure of chains, rules and named counters; Ruleset.String renders it
// in nft's own syntax (what `nft list table inet piimage` prints, and what
// `piimage inspect` shows); Apply (Linux) sends it to the kernel in one
// netlink batch, which replaces the previous table atomically.
//
// The ruleset drops every inbound packet except: loopback; replies to the
// node's own connections (conntrack established/related); IGMP (so that
// switches keep delivering VRRP's multicast group); ICMP echo at a bounded
// rate and ICMP destination-unreachable (path MTU discovery); the role's
// public ports; VRRP from the other load balancers only; the mirror port
// on the mirror's primary from the other web nodes; the admin port from the
// management networks. IPv6 is dropped (the nodes are IPv4 only).
//
// Public ports (web: web port and TLS port; load balancers: balancer port,
// TLS port and stats port) and VRRP are not tracked by conntrack (a raw
// chain marks them notrack in both directions): a SYN flood, even from
// forged addresses, then cannot fill the conntrack table, which the node's
// own connections (health checks, mirror, DNS, NTP) need. Their SYNs pass
// a per-source meter (a dynamic set with a rate limit per address) unless
// the source is exempt; the kernel's SYN cookies do the rest.
package firewall

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/piimage/piimage/overlays"
)

// TableName is the name of the nftables table (family inet) the ruleset
// owns. Apply replaces it and nothing else.
const TableName = "piimage"

// Ruleset is the node's whole firewall: one inet table.
type Ruleset struct {
	// Counters are the named counters, in declaration order.
	Counters []string
	// Sets are the dynamic sets that meter sources.
	Sets []Set
	// Chains are the base chains, in declaration order.
	Chains []Chain
	// Notes are remarks for a person reading the ruleset, such as a
	// default that is weaker than it could be.
	Notes []string
}

// Set is a dynamic set of IPv4 source addresses, each element carrying
// its own rate limiter.
type Set struct {
	Name    string
	Size    uint32
	Timeout time.Duration
}

// Hook is where a base chain hangs in the kernel's packet path.
type Hook int

// Hooks a chain can have.
const (
	HookPrerouting Hook = iota
	HookInput
	HookOutput
)

// Priorities of base chains (nftables' named priorities).
const (
	PriorityRaw    = -300
	PriorityFilter = 0
)

// Chain is a base chain.
type Chain struct {
	Name     string
	Hook     Hook
	Priority int
	// Policy is what happens to packets no rule decided: Accept or Drop.
	Policy Verdict
	Rules  []Rule
}

// Verdict is what a rule does with a packet it matches.
type Verdict int

// Verdicts and statements ending a rule.
const (
	Accept  Verdict = iota
	Drop            // drop the packet
	NoTrack         // exempt the packet from conntrack; evaluation goes on
)

// Rule matches packets (every Match must hold), counts them in Counter
// (when set) and applies Verdict.
type Rule struct {
	Match   []Match
	Counter string
	Verdict Verdict
	// Comment says why the rule is there; it is stored in the kernel too.
	Comment string
}

// Match is one condition of a rule: one of the types below.
type Match interface{ isMatch() }

// IIfName matches the input interface by name.
type IIfName string

// NFProto matches the packet's family: NFProtoIPv4 or NFProtoIPv6.
type NFProto uint8

// Families NFProto matches.
const (
	NFProtoIPv4 NFProto = 2  // NFPROTO_IPV4
	NFProtoIPv6 NFProto = 10 // NFPROTO_IPV6
)

// CtState matches when the connection's state is any of the set bits.
type CtState uint32

// Conntrack states (the kernel's NF_CT_STATE_* bits).
const (
	CtInvalid     CtState = 1
	CtEstablished CtState = 2
	CtRelated     CtState = 4
	CtNew         CtState = 8
	CtUntracked   CtState = 64
)

// IPProto matches the IPv4 header's protocol field.
type IPProto uint8

// IP protocol numbers used here.
const (
	ProtoICMP IPProto = 1
	ProtoIGMP IPProto = 2
	ProtoTCP  IPProto = 6
	ProtoUDP  IPProto = 17
	ProtoVRRP IPProto = 112
)

// SAddr matches an IPv4 source network.
type SAddr struct{ netip.Prefix }

// TCPDport matches the TCP destination port.
type TCPDport uint16

// TCPSport matches the TCP source port.
type TCPSport uint16

// TCPSyn matches a TCP segment with SYN set and ACK clear: the first
// packet of a connection.
type TCPSyn struct{}

// ICMPType matches an ICMP message type (IPv4).
type ICMPType uint8

// ICMP types used here.
const (
	ICMPDestUnreachable ICMPType = 3
	ICMPEchoRequest     ICMPType = 8
)

// Limit matches while the packets it sees stay within Rate per second
// (with Burst), for all sources together.
type Limit struct {
	Rate, Burst uint32
}

// Meter adds the packet's IPv4 source to Set (or refreshes it there) and
// matches when that source's own rate exceeds Rate per second with Burst.
type Meter struct {
	Set         string
	Rate, Burst uint32
}

func (IIfName) isMatch()  {}
func (NFProto) isMatch()  {}
func (CtState) isMatch()  {}
func (IPProto) isMatch()  {}
func (SAddr) isMatch()    {}
func (TCPDport) isMatch() {}
func (TCPSport) isMatch() {}
func (TCPSyn) isMatch()   {}
func (ICMPType) isMatch() {}
func (Limit) isMatch()    {}
func (Meter) isMatch()    {}

// Counter names.
const (
	CounterInvalid       = "invalid"
	CounterICMPEcho      = "icmp_echo"
	CounterICMPLimited   = "icmp_limited"
	CounterVRRP          = "vrrp"
	CounterVRRPStrangers = "vrrp_strangers"
	CounterPublic        = "public"
	CounterRateLimited   = "rate_limited"
	CounterMirror        = "mirror"
	CounterAdmin         = "admin"
	CounterDropped       = "dropped"
)

// meterSet names the per-source meter of the public ports.
const meterSet = "public_rate"

// Options select kernel features, for kernels that lack some.
type Options struct {
	// NoMeters leaves out the per-source rate limit of public ports.
	NoMeters bool
}

// Port is one TCP port open to everyone and the service it belongs to.
type Port struct {
	Port    uint16
	Service string
}

// PublicPorts returns the role's TCP ports that are open to everyone, in
// ascending order.
func PublicPorts(n *overlays.Node) []Port {
	var ports []Port
	add := func(p int, svc string) {
		for _, q := range ports {
			if int(q.Port) == p {
				return
			}
		}
		if p > 0 && p < 65536 {
			ports = append(ports, Port{uint16(p), svc})
		}
	}
	switch {
	case n.IsLB() && n.Balancer != nil:
		b := n.Balancer
		add(b.PortOrDefault(), "balancer")
		if b.TLS != nil {
			add(orDefault(b.TLS.Port, overlays.DefaultTLSPort), "balancer TLS")
		}
		if b.Stats != nil {
			add(orDefault(b.Stats.Port, overlays.DefaultStatsPort), "balancer stats")
		}
	case n.Role == overlays.RoleWeb:
		add(n.Web.PortOrDefault(), "web")
		if n.Web != nil && n.Web.TLS != nil {
			add(n.Web.TLS.PortOrDefault(), "web TLS")
		}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].Port < ports[j].Port })
	return ports
}

// Generate returns the ruleset of node n, or nil when n turns the firewall
// off. It reads nothing but n.
func Generate(n *overlays.Node, o Options) *Ruleset {
	if !n.FirewallEnabled() {
		return nil
	}
	g := &gen{rs: &Ruleset{}, used: map[string]bool{}}
	public := PublicPorts(n)
	g.inputBase(n)
	g.vrrp(n)
	g.publicPorts(n, public, o)
	g.mirror(n)
	for _, src := range n.AdminFromOrDefault() {
		g.rule(Rule{Match: []Match{SAddr{src}, TCPDport(n.Admin.PortOrDefault())}, Counter: CounterAdmin,
			Comment: "admin API from a management network"})
	}
	g.rule(Rule{Counter: CounterDropped, Verdict: Drop, Comment: "everything else"})
	input := Chain{Name: "input", Hook: HookInput, Priority: PriorityFilter, Policy: Drop, Rules: g.rules}

	var pre, out []Rule
	for _, p := range public {
		pre = append(pre, Rule{Match: []Match{TCPDport(p.Port)}, Verdict: NoTrack})
		out = append(out, Rule{Match: []Match{TCPSport(p.Port)}, Verdict: NoTrack})
	}
	if n.IsLB() {
		pre = append(pre, Rule{Match: []Match{IPProto(ProtoVRRP)}, Verdict: NoTrack})
		out = append(out, Rule{Match: []Match{IPProto(ProtoVRRP)}, Verdict: NoTrack})
	}
	if len(pre) > 0 {
		g.rs.Chains = append(g.rs.Chains, Chain{Name: "raw_prerouting", Hook: HookPrerouting, Priority: PriorityRaw, Policy: Accept, Rules: pre})
	}
	g.rs.Chains = append(g.rs.Chains, input)
	if len(out) > 0 {
		g.rs.Chains = append(g.rs.Chains, Chain{Name: "raw_output", Hook: HookOutput, Priority: PriorityRaw, Policy: Accept, Rules: out})
	}
	for _, c := range []string{CounterInvalid, CounterICMPEcho, CounterICMPLimited, CounterVRRP, CounterVRRPStrangers,
		CounterPublic, CounterRateLimited, CounterMirror, CounterAdmin, CounterDropped} {
		if g.used[c] {
			g.rs.Counters = append(g.rs.Counters, c)
		}
	}
	return g.rs
}

// gen collects the input chain's rules.
type gen struct {
	rs    *Ruleset
	rules []Rule
	used  map[string]bool
}

func (g *gen) rule(r Rule) {
	if r.Counter != "" {
		g.used[r.Counter] = true
	}
	g.rules = append(g.rules, r)
}

// inputBase adds the rules every node has, before the role's.
func (g *gen) inputBase(n *overlays.Node) {
	icmp := uint32(n.ICMPPerSecondOrDefault())
	g.rule(Rule{Match: []Match{IIfName("lo")}, Comment: "loopback"})
	// Before conntrack's verdict: echo requests reusing an identifier
	// count as an established "connection".
	g.rule(Rule{Match: []Match{ICMPEchoRequest, Limit{Rate: icmp, Burst: 2 * icmp}}, Counter: CounterICMPEcho})
	g.rule(Rule{Match: []Match{ICMPEchoRequest}, Counter: CounterICMPLimited, Verdict: Drop})
	g.rule(Rule{Match: []Match{CtEstablished | CtRelated}, Comment: "replies to the node's own connections"})
	g.rule(Rule{Match: []Match{CtInvalid}, Counter: CounterInvalid, Verdict: Drop})
	g.rule(Rule{Match: []Match{NFProtoIPv6}, Counter: CounterDropped, Verdict: Drop, Comment: "IPv6 is not used"})
	g.rule(Rule{Match: []Match{IPProto(ProtoIGMP)}, Comment: "multicast membership queries"})
	g.rule(Rule{Match: []Match{ICMPDestUnreachable}, Comment: "path MTU discovery"})
}

// vrrp accepts VRRP from the other load balancers and counts the rest.
func (g *gen) vrrp(n *overlays.Node) {
	if !n.IsLB() {
		return
	}
	srcs, named := n.VRRPSources()
	comment := "VRRP from the other load balancer"
	if !named {
		comment = "VRRP from the VIP's subnet"
		g.rs.Notes = append(g.rs.Notes, fmt.Sprintf(
			"VRRP is accepted from every address of %s: name the other load balancer in firewall.vrrp_peers (or vip.peers)",
			joinPrefixes(srcs)))
	}
	for _, src := range srcs {
		g.rule(Rule{Match: []Match{SAddr{src}, IPProto(ProtoVRRP)}, Counter: CounterVRRP, Comment: comment})
	}
	g.rule(Rule{Match: []Match{IPProto(ProtoVRRP)}, Counter: CounterVRRPStrangers, Verdict: Drop, Comment: "VRRP from anyone else"})
}

// publicPorts accepts the role's public ports, metering each source's SYNs.
func (g *gen) publicPorts(n *overlays.Node, ports []Port, o Options) {
	if len(ports) == 0 {
		return
	}
	rl := n.RateLimitOrDefault()
	if !o.NoMeters {
		g.rs.Sets = append(g.rs.Sets, Set{Name: meterSet, Size: 65535, Timeout: time.Minute})
	} else {
		g.rs.Notes = append(g.rs.Notes, "this kernel cannot meter sources: new connections to the public ports are not rate-limited")
	}
	for _, p := range ports {
		for _, src := range rl.Exempt {
			g.rule(Rule{Match: []Match{SAddr{src}, TCPDport(p.Port)}, Counter: CounterPublic, Comment: p.Service + ", exempt from the rate limit"})
		}
		if !o.NoMeters {
			g.rule(Rule{Match: []Match{TCPDport(p.Port), TCPSyn{}, Meter{Set: meterSet, Rate: uint32(rl.PerSecond), Burst: uint32(rl.Burst)}},
				Counter: CounterRateLimited, Verdict: Drop, Comment: p.Service + ": too many new connections from one source"})
		}
		g.rule(Rule{Match: []Match{TCPDport(p.Port)}, Counter: CounterPublic, Comment: p.Service})
	}
}

// mirror opens the mirror port of the primary to the other web nodes.
func (g *gen) mirror(n *overlays.Node) {
	if n.Role != overlays.RoleWeb || !n.Mirror.IsPrimary(n) {
		return
	}
	for _, src := range n.MirrorFromOrDefault() {
		g.rule(Rule{Match: []Match{SAddr{src}, TCPDport(n.Mirror.PortOrDefault())}, Counter: CounterMirror, Comment: "mirror from the web nodes"})
	}
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func joinPrefixes(ps []netip.Prefix) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += p.String()
	}
	return s
}
