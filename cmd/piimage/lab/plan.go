// Package lab runs a piimage cluster on one machine: one network namespace
// per node, joined by a bridge that lives in a namespace of its own, each
// node running the real init as an ordinary process with its overlay's
// addresses, and a client namespace from which the lab (and the person
// using it) reaches the nodes. Nothing is ever configured in the machine's
// initial network namespace: the overlay's addresses exist only inside the
// lab's namespaces, and the lab reaches them by entering the client
// namespace from a locked OS thread.
//
// The lab records everything it makes in a state file (State) before
// making it, so Down removes every namespace and process even after the
// lab itself crashed. Faults (link down, kill, freeze, reboot, partition)
// are injected by Fail and undone by Heal; RunLoad drives HTTP load at the
// VIP and records every request; Scenarios measures failovers and Report
// prints them as a table and an HTML page with a latency plot.
package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"

	"github.com/piimage/piimage/overlays"
)

// Defaults of a lab.
const (
	// DefaultName is the lab's name and the prefix of everything it
	// makes: namespaces are DefaultName + "-" + node.
	DefaultName = "piimage-lab"
	// DefaultRunDir holds one folder per lab: its state file, the init
	// binary, and each node's overlay copy, state folder, web root and log.
	DefaultRunDir = "/run/piimage-lab"
	// ClientName is the name `lab exec` knows the client namespace by.
	ClientName = "client"
	// statsPort is the balancer stats port the lab adds to load balancers
	// that have no stats page, to read request counters and backends.
	statsPort = 1936
)

// Plan is what a lab is made of, computed from the cluster's overlays
// without touching the system.
type Plan struct {
	// Name prefixes every namespace; Dir is the lab's folder.
	Name string `json:"name"`
	Dir  string `json:"dir"`
	// BridgeNS holds the bridge br0; ClientNS the client's eth0.
	BridgeNS string `json:"bridge_ns"`
	ClientNS string `json:"client_ns"`
	// ClientPort is the bridge-side end of the client's veth.
	ClientPort string `json:"client_port"`
	// Subnet is the nodes' eth0 subnet and Client the client's address in
	// it (the nodes' gateway when no node uses that address).
	Subnet netip.Prefix `json:"subnet"`
	Client netip.Prefix `json:"client"`
	// ClientPool are further addresses of the client from which load is
	// sent, one connection from each in turn, so the load looks like many
	// clients (the nodes' firewall limits new connections per source).
	ClientPool []netip.Addr `json:"client_pool"`
	// VIPs are the load balancers' floating addresses.
	VIPs []netip.Prefix `json:"vips"`
	// Nodes are the cluster's nodes, load balancers first.
	Nodes []PlanNode `json:"nodes"`
}

// PlanNode is one node of a lab.
type PlanNode struct {
	Host string `json:"host"`
	Role string `json:"role"`
	// NS is the node's namespace; Port the bridge-side end of its veth
	// (the node's end is eth0).
	NS   string       `json:"ns"`
	Port string       `json:"port"`
	Addr netip.Prefix `json:"addr"`
	// AdminPort is the node's admin API port.
	AdminPort int `json:"admin_port"`
	// Dir is the node's folder; Overlay the lab's copy of its overlay,
	// State its init's state folder, WWW its web root and Log its
	// console.
	Dir     string `json:"dir"`
	Overlay string `json:"overlay"`
	State   string `json:"state"`
	WWW     string `json:"www,omitempty"`
	Log     string `json:"log"`
	// Stats is the balancer's stats (metrics) base URL, on load balancers.
	Stats string `json:"stats,omitempty"`
	// Card is the node's card folder when the lab runs images (see
	// Config.Cards); "" when the node runs without one.
	Card string `json:"card,omitempty"`
	// MirrorPrimary is the web node whose root this one mirrors; "" when
	// it mirrors nothing.
	MirrorPrimary string `json:"mirror_primary,omitempty"`
	// WebURL is the web server's base URL, on web nodes.
	WebURL string `json:"web_url,omitempty"`
}

// AdminURL is the node's admin API base URL, reachable from the client
// namespace.
func (n PlanNode) AdminURL() string {
	return fmt.Sprintf("http://%s:%d", n.Addr.Addr(), n.AdminPort)
}

// IsLB reports whether the node is a load balancer.
func (n PlanNode) IsLB() bool {
	return n.Role == overlays.RoleLBMaster || n.Role == overlays.RoleLBBackup
}

// Node returns the plan's node named host.
func (p *Plan) Node(host string) (PlanNode, bool) {
	for _, n := range p.Nodes {
		if n.Host == host {
			return n, true
		}
	}
	return PlanNode{}, false
}

// Role returns the first node of role.
func (p *Plan) Role(role string) (PlanNode, bool) {
	for _, n := range p.Nodes {
		if n.Role == role {
			return n, true
		}
	}
	return PlanNode{}, false
}

// Hosts lists the nodes' hostnames, in plan order.
func (p *Plan) Hosts() []string {
	var out []string
	for _, n := range p.Nodes {
		out = append(out, n.Host)
	}
	return out
}

// VIP returns the first floating address, or the zero Addr.
func (p *Plan) VIP() netip.Addr {
	if len(p.VIPs) == 0 {
		return netip.Addr{}
	}
	return p.VIPs[0].Addr()
}

// NewPlan plans the lab name in folder dir for a cluster. Every node's eth0
// must be in one subnet (the lab has one bridge), and the cluster must
// pass overlays.ValidateCluster.
func NewPlan(name, dir string, nodes []*overlays.Node) (*Plan, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, errors.New("planning the lab: the cluster has no nodes")
	}
	if err := overlays.ValidateCluster(nodes); err != nil {
		return nil, fmt.Errorf("planning the lab: %w", err)
	}
	p := &Plan{
		Name: name, Dir: dir,
		BridgeNS: name + "-br", ClientNS: name + "-" + ClientName, ClientPort: "c-" + ClientName,
	}
	sorted := append([]*overlays.Node(nil), nodes...)
	sort.SliceStable(sorted, func(i, j int) bool { return roleRank(sorted[i].Role) < roleRank(sorted[j].Role) })
	used := map[netip.Addr]bool{}
	var gateways []netip.Addr
	for i, n := range sorted {
		a := n.Eth0Address()
		if !a.IsValid() {
			return nil, fmt.Errorf("planning the lab: %s has no eth0 address", n.Hostname)
		}
		if !p.Subnet.IsValid() {
			p.Subnet = a.Masked()
		} else if a.Masked() != p.Subnet {
			return nil, fmt.Errorf("planning the lab: %s's eth0 %s is outside %s; the lab puts every node on one bridge", n.Hostname, a, p.Subnet)
		}
		if n.Hostname == ClientName || n.Hostname == "br" {
			return nil, fmt.Errorf("planning the lab: the hostname %q is the lab's own", n.Hostname)
		}
		used[a.Addr()] = true
		if w := n.Interfaces.Wlan0; w != nil {
			used[w.Address.Addr()] = true
		}
		if g := n.Interfaces.Eth0.Gateway; g.IsValid() {
			gateways = append(gateways, g)
		}
		if n.VIP != nil && n.IsLB() {
			for _, r := range n.VIP.AllRouters() {
				for _, v := range r.AllAddresses() {
					used[v.Addr()] = true
					if !containsPrefix(p.VIPs, v) {
						p.VIPs = append(p.VIPs, v)
					}
				}
			}
		}
		nd := filepath.Join(dir, "nodes", n.Hostname)
		pn := PlanNode{
			Host: n.Hostname, Role: n.Role, NS: name + "-" + n.Hostname,
			Port: portName(i, n.Hostname), Addr: a, AdminPort: n.Admin.PortOrDefault(),
			Dir: nd, Overlay: filepath.Join(nd, "node.yaml"), State: filepath.Join(nd, "state"),
			Log: filepath.Join(nd, "console.log"),
		}
		if n.Role == overlays.RoleWeb {
			pn.WWW = filepath.Join(nd, "www")
			pn.WebURL = fmt.Sprintf("http://%s:%d", a.Addr(), n.Web.PortOrDefault())
			if n.Mirror != nil {
				pn.MirrorPrimary = n.Mirror.Primary
			}
		}
		if n.IsLB() && n.Balancer != nil {
			port := statsPort
			if n.Balancer.Stats != nil && n.Balancer.Stats.Port != 0 {
				port = n.Balancer.Stats.Port
			}
			pn.Stats = fmt.Sprintf("http://%s:%d", a.Addr(), port)
		}
		p.Nodes = append(p.Nodes, pn)
	}
	client, err := clientAddr(p.Subnet, gateways, used)
	if err != nil {
		return nil, err
	}
	p.Client = client
	used[client.Addr()] = true
	for len(p.ClientPool) < clientPoolSize {
		a, err := clientAddr(p.Subnet, nil, used)
		if err != nil {
			break
		}
		used[a.Addr()] = true
		p.ClientPool = append(p.ClientPool, a.Addr())
	}
	return p, nil
}

// clientPoolSize is how many source addresses the load comes from: at
// 3,200 requests a second each sends 100, the firewall's default limit
// of new connections per source.
const clientPoolSize = 32

// clientAddr picks the client's address: the nodes' gateway when it is in
// the subnet and free (the client then plays the router), else the highest
// free address.
func clientAddr(subnet netip.Prefix, gateways []netip.Addr, used map[netip.Addr]bool) (netip.Prefix, error) {
	for _, g := range gateways {
		if subnet.Contains(g) && !used[g] {
			return netip.PrefixFrom(g, subnet.Bits()), nil
		}
	}
	if !subnet.Addr().Is4() || subnet.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("planning the lab: subnet %s has no room for the client", subnet)
	}
	last := subnet.Addr().As4()
	host := uint32(1)<<(32-subnet.Bits()) - 1
	base := uint32(last[0])<<24 | uint32(last[1])<<16 | uint32(last[2])<<8 | uint32(last[3])
	for h := host - 1; h >= 1; h-- {
		v := base | h
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if !used[a] {
			return netip.PrefixFrom(a, subnet.Bits()), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("planning the lab: no free address in %s for the client", subnet)
}

func containsPrefix(list []netip.Prefix, p netip.Prefix) bool {
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}

// portName names the bridge-side end of node i's veth: at most 15 bytes,
// the limit of Linux interface names.
func portName(i int, host string) string {
	s := fmt.Sprintf("p%d-%s", i, host)
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}

func roleRank(role string) int {
	switch role {
	case overlays.RoleLBMaster:
		return 0
	case overlays.RoleLBBackup:
		return 1
	}
	return 2
}

// checkName refuses lab names that would not make good namespace names.
func checkName(name string) error {
	if name == "" || len(name) > 40 {
		return fmt.Errorf("lab name %q: 1 to 40 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("lab name %q: only a-z, 0-9 and '-'", name)
		}
	}
	if strings.HasPrefix(name, "-") {
		return fmt.Errorf("lab name %q: must not start with '-'", name)
	}
	return nil
}
