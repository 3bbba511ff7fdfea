package overlays

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Validate checks every field of n and returns an *Error listing all bad
// ones, or nil. Nodes built in Go code get problems without line numbers;
// Parse runs Validate itself.
func (n *Node) Validate() error {
	p := newProblems(n.File)
	n.validate(p)
	return p.err()
}

func (n *Node) validate(p *problems) {
	if n.Hostname == "" {
		p.addf("hostname", "required, e.g. hostname: web01")
	} else if msg := checkHostname(n.Hostname); msg != "" {
		p.addf("hostname", "%s", msg)
	}
	switch n.Role {
	case RoleLBMaster, RoleLBBackup, RoleWeb:
	case "":
		p.addf("role", "required: %s, %s or %s", RoleLBMaster, RoleLBBackup, RoleWeb)
	default:
		p.addf("role", "%q is not a role; use %s, %s or %s", n.Role, RoleLBMaster, RoleLBBackup, RoleWeb)
	}
	switch n.Board {
	case "", BoardPi2, BoardPi3, BoardPi4:
	default:
		p.addf("board", "%q is not a board; use %s, %s or %s (default %s)", n.Board, BoardPi2, BoardPi3, BoardPi4, DefaultBoard)
	}
	n.validateInterfaces(p)
	n.validateDNS(p)
	checkPort(p, "admin.port", n.Admin.Port)
	n.validateSections(p)
	n.validatePorts(p)
	n.validateFirewall(p) // firewall.go
	n.validateTime(p)     // time.go
}

func (n *Node) validateInterfaces(p *problems) {
	eth0, wlan0 := n.Interfaces.Eth0, n.Interfaces.Wlan0
	if eth0 == nil {
		p.addf("interfaces.eth0", "required, e.g. eth0: {address: 192.168.1.10/24, gateway: 192.168.1.1}")
	} else {
		eth0.validate(p, "interfaces.eth0")
		eth0.validateNoWiFi(p, "interfaces.eth0") // wlan.go
	}
	if wlan0 != nil {
		wlan0.validate(p, "interfaces.wlan0")
		wlan0.validateWiFi(p, "interfaces.wlan0")
	}
	if eth0 != nil && wlan0 != nil && eth0.Address.IsValid() && eth0.Address.Addr() == wlan0.Address.Addr() {
		p.addf("interfaces.wlan0.address", "%s is also eth0's address", wlan0.Address.Addr())
	}
}

// validate checks one interface's address and gateway.
func (i *Interface) validate(p *problems, path string) {
	if !i.Address.IsValid() {
		p.addf(path+".address", "required, an IPv4 address with prefix length like 192.168.1.10/24")
	} else if msg := checkHostPrefix(i.Address); msg != "" {
		p.addf(path+".address", "%s", msg)
	}
	if !i.Gateway.IsValid() {
		return
	}
	gw := i.Gateway
	switch {
	case !gw.Is4():
		p.addf(path+".gateway", "%s is not an IPv4 address", gw)
	case !i.Address.IsValid() || checkHostPrefix(i.Address) != "":
		// Reported above; the subnet is unknown.
	case !i.Address.Masked().Contains(gw):
		p.addf(path+".gateway", "%s is outside %s", gw, i.Address.Masked())
	case gw == i.Address.Addr():
		p.addf(path+".gateway", "%s is the interface's own address", gw)
	default:
		if msg := checkNotNetOrBroadcast(gw, i.Address); msg != "" {
			p.addf(path+".gateway", "%s", msg)
		}
	}
}

func (n *Node) validateDNS(p *problems) {
	seen := map[netip.Addr]int{}
	for i, a := range n.DNS {
		path := fmt.Sprintf("dns[%d]", i)
		if msg := checkUnicast4(a); msg != "" {
			p.addf(path, "%s", msg)
			continue
		}
		if j, ok := seen[a]; ok {
			p.addf(path, "%s is listed twice (also dns[%d])", a, j)
			continue
		}
		seen[a] = i
	}
}

// validateSections checks which service sections the role allows, then each
// section present.
func (n *Node) validateSections(p *problems) {
	lb := n.IsLB()
	web := n.Role == RoleWeb
	if n.VIP == nil && lb {
		p.addf("vip", "required on %s nodes, e.g. vip: {router_id: 77, priority: 100, address: 192.168.1.15/24}", n.Role)
	}
	if n.VIP != nil {
		if web {
			p.addf("vip", "only lbmaster and lbbackup nodes hold the VIP; remove this section from a web node")
		} else {
			n.VIP.validate(p, "vip", n)
		}
	}
	if n.Balancer != nil {
		if web {
			p.addf("balancer", "only lbmaster and lbbackup nodes run the balancer; remove this section from a web node")
		} else {
			n.Balancer.validate(p, "balancer", n)
		}
	}
	if n.Web != nil {
		if lb {
			p.addf("web", "only web nodes run the web server; remove this section from this %s node", n.Role)
		} else {
			n.Web.validate(p, "web", n)
		}
	}
	if n.Mirror != nil {
		if lb {
			p.addf("mirror", "only web nodes mirror the web root; remove this section from this %s node", n.Role)
		} else {
			n.Mirror.validate(p, "mirror", n)
		}
	}
}

// validatePorts reports two services of the node on the same TCP port.
func (n *Node) validatePorts(p *problems) {
	type use struct {
		path string
		port int
	}
	uses := []use{{"admin.port", n.Admin.PortOrDefault()}}
	if n.Balancer != nil && n.IsLB() {
		uses = append(uses, use{"balancer.port", n.Balancer.PortOrDefault()})
	}
	if n.Web != nil || n.Role == RoleWeb {
		uses = append(uses, use{"web.port", n.Web.PortOrDefault()})
	}
	if n.Mirror != nil && n.Role == RoleWeb {
		uses = append(uses, use{"mirror.port", n.Mirror.PortOrDefault()})
	}
	for i := range uses {
		for j := range i {
			if uses[i].port == uses[j].port && validPort(uses[i].port) {
				p.addf(uses[i].path, "port %d is also used by %s", uses[i].port, uses[j].path)
			}
		}
	}
}

// Interface returns the interface called name ("eth0" or "wlan0"), or nil
// when the node does not configure it.
func (n *Node) Interface(name string) *Interface {
	switch name {
	case "eth0":
		return n.Interfaces.Eth0
	case "wlan0":
		return n.Interfaces.Wlan0
	}
	return nil
}

// Addresses returns the node's own interface addresses (not the VIP), with
// the field path of each, in file order.
func (n *Node) addresses() []fieldAddr {
	var out []fieldAddr
	for _, name := range []string{"eth0", "wlan0"} {
		if i := n.Interface(name); i != nil && i.Address.IsValid() {
			out = append(out, fieldAddr{"interfaces." + name + ".address", i.Address.Addr()})
		}
	}
	return out
}

type fieldAddr struct {
	field string
	addr  netip.Addr
}

// checkHostname checks an RFC 1123 host name, written in lower case.
func checkHostname(h string) string {
	if len(h) > 253 {
		return fmt.Sprintf("is %d characters long; a hostname has at most 253", len(h))
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return fmt.Sprintf("%q is an address, not a hostname", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return fmt.Sprintf("%q has an empty label (two dots, or a dot at an end)", h)
		}
		if len(label) > 63 {
			return fmt.Sprintf("label %q is %d characters long; at most 63", label, len(label))
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("%q: a label may not start or end with '-'", h)
		}
		for _, c := range label {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			case c >= 'A' && c <= 'Z':
				return fmt.Sprintf("%q must be lower-case (%q)", h, strings.ToLower(h))
			default:
				return fmt.Sprintf("%q may only hold a-z, 0-9, '-' and '.'", h)
			}
		}
	}
	return ""
}

// checkUnicast4 checks that a is an IPv4 address a host can have or talk to.
func checkUnicast4(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "required, an IPv4 address like 192.168.1.1"
	case !a.Is4():
		return fmt.Sprintf("%s is not an IPv4 address", a)
	case a.IsUnspecified():
		return fmt.Sprintf("%s is the unspecified address", a)
	case a.IsLoopback():
		return fmt.Sprintf("%s is a loopback address", a)
	case a.IsMulticast():
		return fmt.Sprintf("%s is a multicast address", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Sprintf("%s is the broadcast address", a)
	}
	return ""
}

// checkHostPrefix checks an interface address with its prefix length: IPv4,
// unicast, and neither the subnet's network nor its broadcast address.
func checkHostPrefix(pfx netip.Prefix) string {
	a := pfx.Addr()
	if !a.Is4() {
		return fmt.Sprintf("%s is not an IPv4 address", pfx)
	}
	if pfx.Bits() == 0 {
		return fmt.Sprintf("%s: prefix length /0 leaves no subnet; use e.g. /24", pfx)
	}
	if msg := checkUnicast4(a); msg != "" {
		return msg
	}
	return checkNotNetOrBroadcast(a, pfx)
}

// checkNotNetOrBroadcast reports a being the network or broadcast address of
// subnet (subnets of /31 and /32 have neither).
func checkNotNetOrBroadcast(a netip.Addr, subnet netip.Prefix) string {
	if subnet.Bits() > 30 {
		return ""
	}
	netw := subnet.Masked().Addr()
	if a == netw {
		return fmt.Sprintf("%s is the network address of %s, not a host address", a, subnet.Masked())
	}
	b := netw.As4()
	host := uint32(1)<<(32-subnet.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	if a == netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}) {
		return fmt.Sprintf("%s is the broadcast address of %s, not a host address", a, subnet.Masked())
	}
	return ""
}

// hasControl reports whether s is not valid UTF-8 or holds control
// characters, which would corrupt the config files written from it.
func hasControl(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return true
		}
	}
	return false
}

func validPort(port int) bool { return port >= 1 && port <= 65535 }

// checkPort checks an optional TCP port: 0 (the default) or 1..65535.
func checkPort(p *problems, path string, port int) {
	if port != 0 && !validPort(port) {
		p.addf(path, "%d is not a port; use 1 to 65535", port)
	}
}
