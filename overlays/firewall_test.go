package overlays

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

const fwLBHead = `hostname: lbmaster
role: lbmaster
interfaces:
  eth0: {address: 192.168.1.14/24, gateway: 192.168.1.1}
  wlan0: {address: 192.168.2.24/24}
vip: {router_id: 7, priority: 101, address: 192.168.1.15/24}
`

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestFirewallDefaults(t *testing.T) {
	lb, err := Parse("lb.yaml", []byte(fwLBHead))
	if err != nil {
		t.Fatal(err)
	}
	if !lb.FirewallEnabled() {
		t.Error("no firewall section: want the firewall on")
	}
	if got := lb.AdminFromOrDefault(); !reflect.DeepEqual(got, prefixes("192.168.1.0/24")) {
		t.Errorf("admin_from default = %v, want eth0's subnet", got)
	}
	if srcs, named := lb.VRRPSources(); named || !reflect.DeepEqual(srcs, prefixes("192.168.1.0/24")) {
		t.Errorf("vrrp default = %v %v, want the VIP's subnet, unnamed", srcs, named)
	}
	r := lb.RateLimitOrDefault()
	if r.PerSecond != DefaultRateLimitPerSecond || r.Burst != 2*DefaultRateLimitPerSecond || len(r.Exempt) != 0 {
		t.Errorf("LB rate limit default = %+v", r)
	}
	if lb.ICMPPerSecondOrDefault() != DefaultICMPPerSecond {
		t.Error("icmp default")
	}

	web, err := Parse("web.yaml", []byte(webNode))
	if err != nil {
		t.Fatal(err)
	}
	if r := web.RateLimitOrDefault(); !reflect.DeepEqual(r.Exempt, prefixes("192.168.1.0/24")) {
		t.Errorf("web rate limit exempt default = %v, want eth0's subnet", r.Exempt)
	}
	if got := web.MirrorFromOrDefault(); !reflect.DeepEqual(got, prefixes("192.168.1.0/24")) {
		t.Errorf("mirror_from default = %v", got)
	}

	// vip.peers name the VRRP sources when the firewall does not.
	lbp, err := Parse("lb.yaml", []byte(strings.Replace(fwLBHead, "address: 192.168.1.15/24}", "address: 192.168.1.15/24, peers: [192.168.1.13]}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if srcs, named := lbp.VRRPSources(); !named || !reflect.DeepEqual(srcs, prefixes("192.168.1.13/32")) {
		t.Errorf("vrrp from vip.peers = %v %v", srcs, named)
	}
}

func TestFirewallValid(t *testing.T) {
	src := fwLBHead + `firewall:
  admin_from: [192.168.1.5/24, 10.9.0.7/32]
  vrrp_peers: [192.168.1.13]
  rate_limit: {per_second: 50, burst: 80, exempt: [192.168.1.100/32]}
  icmp_per_second: 3
`
	n, err := Parse("lb.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := n.AdminFromOrDefault(); !reflect.DeepEqual(got, prefixes("192.168.1.0/24", "10.9.0.7/32")) {
		t.Errorf("admin_from = %v (masked, without duplicates)", got)
	}
	if srcs, named := n.VRRPSources(); !named || !reflect.DeepEqual(srcs, prefixes("192.168.1.13/32")) {
		t.Errorf("vrrp = %v %v", srcs, named)
	}
	if r := n.RateLimitOrDefault(); r.PerSecond != 50 || r.Burst != 80 || !reflect.DeepEqual(r.Exempt, prefixes("192.168.1.100/32")) {
		t.Errorf("rate limit = %+v", r)
	}
	if n.ICMPPerSecondOrDefault() != 3 {
		t.Error("icmp_per_second")
	}
	out, err := Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("out.yaml", out)
	if err != nil || !reflect.DeepEqual(back.Firewall, n.Firewall) {
		t.Errorf("round trip: %v\n%s", err, out)
	}
	off, err := Parse("off.yaml", []byte(webNode+"firewall: {disabled: true}\n"))
	if err != nil || off.FirewallEnabled() {
		t.Errorf("disabled: %v %v", err, off)
	}
}

func TestFirewallProblems(t *testing.T) {
	tests := []struct {
		name, head, fw string
		field, msg     string
	}{
		{"admin IPv6", fwLBHead, "admin_from: ['fd00::/8']", "firewall.admin_from[0]", "not IPv4"},
		{"admin everything", fwLBHead, "admin_from: [0.0.0.0/0]", "firewall.admin_from[0]", "every address"},
		{"admin loopback", fwLBHead, "admin_from: [127.0.0.0/8]", "firewall.admin_from[0]", "loopback"},
		{"admin twice", fwLBHead, "admin_from: [10.0.0.0/8, 10.1.0.0/8]", "firewall.admin_from[1]", "listed twice"},
		{"admin no length", fwLBHead, "admin_from: [10.0.0.1]", "firewall.admin_from[0]", "prefix length"},
		{"exempt multicast", fwLBHead, "rate_limit: {exempt: [224.0.0.0/4]}", "firewall.rate_limit.exempt[0]", "multicast"},
		{"vrrp on web", webNode, "vrrp_peers: [192.168.1.13]", "firewall.vrrp_peers", "only load balancers"},
		{"vrrp self", fwLBHead, "vrrp_peers: [192.168.1.14]", "firewall.vrrp_peers[0]", "own address"},
		{"vrrp vip", fwLBHead, "vrrp_peers: [192.168.1.15]", "firewall.vrrp_peers[0]", "is a VIP"},
		{"vrrp multicast", fwLBHead, "vrrp_peers: [224.0.0.18]", "firewall.vrrp_peers[0]", "multicast"},
		{"vrrp twice", fwLBHead, "vrrp_peers: [192.168.1.13, 192.168.1.13]", "firewall.vrrp_peers[1]", "listed twice"},
		{"mirror on lb", fwLBHead, "mirror_from: [192.168.1.0/24]", "firewall.mirror_from", "only web nodes"},
		{"rate negative", fwLBHead, "rate_limit: {per_second: -1}", "firewall.rate_limit.per_second", "out of range"},
		{"burst below rate", fwLBHead, "rate_limit: {per_second: 100, burst: 10}", "firewall.rate_limit.burst", "below per_second"},
		{"icmp", fwLBHead, "icmp_per_second: 20000", "firewall.icmp_per_second", "out of range"},
		{"unknown", fwLBHead, "ssh: true", "firewall.ssh", "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.head+"firewall:\n  "+tt.fw+"\n"))
			if err == nil {
				t.Fatal("no error")
			}
			var found bool
			for _, p := range err.(*Error).Problems {
				if p.Field == tt.field && strings.Contains(p.Msg, tt.msg) {
					found = true
					if p.Line == 0 {
						t.Errorf("%s: no line", p)
					}
				}
			}
			if !found {
				t.Errorf("want %s: ...%s...; got\n%v", tt.field, tt.msg, err)
			}
		})
	}
}
