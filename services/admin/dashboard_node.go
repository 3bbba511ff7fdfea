package admin

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/piimage/piimage/overlays"
)

// NodeDashboard returns the dashboard a load balancer serves: itself (read
// directly), the web nodes it balances (their admin API at this node's
// admin port) and its VRRP unicast peers, with the VIPs of its overlay.
// A load balancer whose peer is reached by multicast does not know the
// peer's address; add it to Nodes. It returns nil on web nodes.
func NodeDashboard(s *Server) *Dashboard {
	n := s.Node
	if n == nil || !n.IsLB() {
		return nil
	}
	port := strconv.Itoa(n.Admin.PortOrDefault())
	seen := map[string]bool{}
	if a := n.Eth0Address(); a.IsValid() {
		seen[a.Addr().String()] = true
	}
	var nodes []string
	add := func(host string) {
		if host == "" || seen[host] {
			return
		}
		seen[host] = true
		nodes = append(nodes, "http://"+net.JoinHostPort(host, port))
	}
	var vips []netip.Prefix
	if n.VIP != nil {
		for _, r := range n.VIP.AllRouters() {
			vips = append(vips, r.AllAddresses()...)
			for _, p := range r.Peers {
				add(p.String())
			}
		}
	}
	if n.Balancer != nil {
		for _, b := range n.Balancer.Backends {
			host, _, err := net.SplitHostPort(b.Address)
			if err != nil {
				continue
			}
			add(host)
		}
	}
	return &Dashboard{
		Local:    s.Snapshot,
		Nodes:    nodes,
		VIPs:     vips,
		Expected: roleServices,
		Client: &http.Client{Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{Timeout: 700 * time.Millisecond}).DialContext,
		}},
		Title: n.Hostname + ": cluster",
	}
}

// roleServices lists the services every node of a role runs (the node
// package's RoleServices, which imports this package).
func roleServices(role string) []string {
	switch role {
	case overlays.RoleLBMaster, overlays.RoleLBBackup:
		return []string{"balancer", "vip"}
	case overlays.RoleWeb:
		return []string{"web", "mirror"}
	}
	return nil
}

// mountDashboard serves s.Dashboard, or NodeDashboard(s) when it is nil,
// at GET /dashboard and GET /dashboard.json.
func (s *Server) mountDashboard(mux *http.ServeMux) {
	d := s.Dashboard
	if d == nil {
		d = NodeDashboard(s)
	}
	if d != nil {
		d.Mount(mux, "")
	}
}
