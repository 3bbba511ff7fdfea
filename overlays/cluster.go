package overlays

import (
	"fmt"
	"net/netip"
)

// ValidateCluster checks that nodes, each valid on its own, fit together:
// hostnames and addresses are unique (interface addresses, and the VIP
// against every node's addresses), the load balancers agree on the VIP
// (router_id, address, advert_interval) with distinct priorities and the
// lbmaster highest, and every mirror names the same web node as primary.
// Problems name each node's file (or its hostname when File is empty).
func ValidateCluster(nodes []*Node) error {
	if list := validateCluster(nodes, nil); len(list) > 0 {
		return &Error{Problems: list}
	}
	return nil
}

// clusterCheck collects cluster problems; lines, when known, maps each node
// to the field lines of its file.
type clusterCheck struct {
	lines map[*Node]map[string]int
	list  []Problem
}

func (c *clusterCheck) addf(n *Node, field, format string, args ...any) {
	p := &problems{lines: c.lines[n]}
	c.list = append(c.list, Problem{File: nodeName(n), Line: p.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// nodeName names a node by its file, or by its hostname when built in Go.
func nodeName(n *Node) string {
	if n.File != "" {
		return n.File
	}
	return "node " + n.Hostname
}

// where names a node's field for "also ..." messages.
func where(n *Node, field string) string {
	if n.File != "" {
		return fmt.Sprintf("%s (%s)", field, n.File)
	}
	return fmt.Sprintf("%s of %s", field, n.Hostname)
}

func validateCluster(nodes []*Node, lines map[*Node]map[string]int) []Problem {
	c := &clusterCheck{lines: lines}
	var live []*Node
	for _, n := range nodes {
		if n != nil {
			live = append(live, n)
		}
	}
	c.hostnames(live)
	c.addresses(live)
	c.vips(live)
	c.mirrors(live)
	return c.list
}

func (c *clusterCheck) hostnames(nodes []*Node) {
	seen := map[string]*Node{}
	for _, n := range nodes {
		if first, ok := seen[n.Hostname]; ok {
			c.addf(n, "hostname", "%q is also the hostname of %s", n.Hostname, nodeName(first))
			continue
		}
		seen[n.Hostname] = n
	}
}

type owner struct {
	n     *Node
	field string
}

func (c *clusterCheck) addresses(nodes []*Node) {
	seen := map[netip.Addr]owner{}
	for _, n := range nodes {
		for _, fa := range n.addresses() {
			if first, ok := seen[fa.addr]; ok {
				c.addf(n, fa.field, "%s is also %s", fa.addr, where(first.n, first.field))
				continue
			}
			seen[fa.addr] = owner{n, fa.field}
		}
	}
	for _, n := range nodes {
		if n.VIP == nil || !n.IsLB() || !n.VIP.Address.IsValid() {
			continue
		}
		a := n.VIP.Address.Addr()
		first, ok := seen[a]
		if !ok {
			continue
		}
		// An address owner (priority 255) holds the VIP as its own address.
		if first.n.VIP != nil && first.n.VIP.Priority == 255 && first.n.VIP.Address.Addr() == a {
			continue
		}
		c.addf(n, "vip.address", "%s is also %s; the VIP must be an address no node has", a, where(first.n, first.field))
	}
}

func (c *clusterCheck) vips(nodes []*Node) {
	var ref, master *Node
	prios := map[int]*Node{}
	for _, n := range nodes {
		if !n.IsLB() || n.VIP == nil {
			continue
		}
		v := n.VIP
		if n.Role == RoleLBMaster {
			if master != nil {
				c.addf(n, "role", "a second lbmaster (also %s); make one of them lbbackup", where(master, "role"))
			} else {
				master = n
			}
		}
		if first, ok := prios[v.Priority]; ok {
			c.addf(n, "vip.priority", "%d is also %s; load balancers need distinct priorities", v.Priority, where(first, "vip.priority"))
		} else {
			prios[v.Priority] = n
		}
		if ref == nil {
			ref = n
			continue
		}
		r := ref.VIP
		if v.RouterID != r.RouterID {
			c.addf(n, "vip.router_id", "%d differs from %d in %s; all load balancers share one router_id", v.RouterID, r.RouterID, where(ref, "vip.router_id"))
		}
		if v.Address != r.Address {
			c.addf(n, "vip.address", "%s differs from %s in %s; all load balancers share one VIP", v.Address, r.Address, where(ref, "vip.address"))
		}
		if v.AdvertIntervalOrDefault() != r.AdvertIntervalOrDefault() {
			c.addf(n, "vip.advert_interval", "%s differs from %s in %s", v.AdvertIntervalOrDefault(), r.AdvertIntervalOrDefault(), where(ref, "vip.advert_interval"))
		}
	}
	if master == nil {
		return
	}
	for _, n := range nodes {
		if n.Role == RoleLBBackup && n.VIP != nil && n.VIP.Priority >= master.VIP.Priority {
			c.addf(n, "vip.priority", "%d is not below the lbmaster's %d (%s)", n.VIP.Priority, master.VIP.Priority, where(master, "vip.priority"))
		}
	}
}

func (c *clusterCheck) mirrors(nodes []*Node) {
	web := map[string]*Node{}
	for _, n := range nodes {
		if n.Role == RoleWeb {
			web[n.Hostname] = n
		}
	}
	var ref *Node
	for _, n := range nodes {
		m := n.Mirror
		if m == nil || n.Role != RoleWeb {
			continue
		}
		if _, ok := web[m.Primary]; !ok {
			c.addf(n, "mirror.primary", "%q is not the hostname of a web node of the cluster", m.Primary)
		}
		if ref == nil {
			ref = n
			continue
		}
		if m.Primary != ref.Mirror.Primary {
			c.addf(n, "mirror.primary", "%q differs from %q in %s; all web nodes copy from one primary", m.Primary, ref.Mirror.Primary, where(ref, "mirror.primary"))
		}
		if m.PortOrDefault() != ref.Mirror.PortOrDefault() {
			c.addf(n, "mirror.port", "%d differs from %d in %s", m.PortOrDefault(), ref.Mirror.PortOrDefault(), where(ref, "mirror.port"))
		}
	}
}
