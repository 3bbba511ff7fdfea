package firewall

import (
	"fmt"
	"strings"
	"time"
)

// String renders the ruleset as nft input, preceded by its notes as
// comments: what `piimage inspect` shows.
func (rs *Ruleset) String() string {
	if rs == nil {
		return "# the firewall is disabled (firewall.disabled): every port is open\n"
	}
	var b strings.Builder
	for _, n := range rs.Notes {
		fmt.Fprintf(&b, "# note: %s\n", n)
	}
	b.WriteString(rs.Table())
	return b.String()
}

// Table renders the table as `nft list table inet piimage` prints it,
// except that counters show no values.
func (rs *Ruleset) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	var blocks []string
	for _, c := range rs.Counters {
		blocks = append(blocks, fmt.Sprintf("\tcounter %s {\n\t}\n", c))
	}
	for _, s := range rs.Sets {
		blocks = append(blocks, fmt.Sprintf("\tset %s {\n\t\ttype ipv4_addr\n\t\tsize %d\n\t\tflags dynamic,timeout\n\t\ttimeout %s\n\t}\n",
			s.Name, s.Size, nftDuration(s.Timeout)))
	}
	for _, c := range rs.Chains {
		var cb strings.Builder
		fmt.Fprintf(&cb, "\tchain %s {\n\t\ttype filter hook %s priority %s; policy %s;\n",
			c.Name, c.Hook, priorityName(c.Priority), c.Policy)
		for _, r := range c.Rules {
			fmt.Fprintf(&cb, "\t\t%s\n", r)
		}
		cb.WriteString("\t}\n")
		blocks = append(blocks, cb.String())
	}
	b.WriteString(strings.Join(blocks, "\n"))
	b.WriteString("}\n")
	return b.String()
}

// String renders one rule as nft prints it.
func (r Rule) String() string {
	var parts []string
	for _, m := range r.Match {
		parts = append(parts, matchString(m))
	}
	if r.Counter != "" {
		parts = append(parts, fmt.Sprintf("counter name %q", r.Counter))
	}
	parts = append(parts, r.Verdict.String())
	if r.Comment != "" {
		parts = append(parts, fmt.Sprintf("comment %q", r.Comment))
	}
	return strings.Join(parts, " ")
}

func matchString(m Match) string {
	switch m := m.(type) {
	case IIfName:
		return fmt.Sprintf("iifname %q", string(m))
	case NFProto:
		if m == NFProtoIPv6 {
			return "meta nfproto ipv6"
		}
		return "meta nfproto ipv4"
	case CtState:
		return "ct state " + m.String()
	case IPProto:
		return "ip protocol " + m.String()
	case SAddr:
		if m.Bits() == 32 {
			return "ip saddr " + m.Addr().String()
		}
		return "ip saddr " + m.Masked().String()
	case TCPDport:
		return fmt.Sprintf("tcp dport %d", uint16(m))
	case TCPSport:
		return fmt.Sprintf("tcp sport %d", uint16(m))
	case TCPSyn:
		return "tcp flags syn / syn,ack"
	case ICMPType:
		return "icmp type " + m.String()
	case Limit:
		return fmt.Sprintf("limit rate %d/second burst %d packets", m.Rate, m.Burst)
	case Meter:
		return fmt.Sprintf("update @%s { ip saddr limit rate over %d/second burst %d packets }", m.Set, m.Rate, m.Burst)
	}
	return fmt.Sprintf("?%T", m)
}

func (h Hook) String() string {
	switch h {
	case HookPrerouting:
		return "prerouting"
	case HookInput:
		return "input"
	case HookOutput:
		return "output"
	}
	return fmt.Sprintf("hook(%d)", int(h))
}

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	case NoTrack:
		return "notrack"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

func (s CtState) String() string {
	var names []string
	for _, x := range []struct {
		bit  CtState
		name string
	}{{CtInvalid, "invalid"}, {CtEstablished, "established"}, {CtRelated, "related"}, {CtNew, "new"}, {CtUntracked, "untracked"}} {
		if s&x.bit != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

func (p IPProto) String() string {
	switch p {
	case ProtoICMP:
		return "icmp"
	case ProtoIGMP:
		return "igmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoVRRP:
		return "vrrp"
	}
	return fmt.Sprint(uint8(p))
}

func (t ICMPType) String() string {
	switch t {
	case ICMPDestUnreachable:
		return "destination-unreachable"
	case ICMPEchoRequest:
		return "echo-request"
	}
	return fmt.Sprint(uint8(t))
}

func priorityName(p int) string {
	switch p {
	case PriorityRaw:
		return "raw"
	case PriorityFilter:
		return "filter"
	}
	return fmt.Sprint(p)
}

// nftDuration writes a duration as nft does: 1m, 30s, 1h.
func nftDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
