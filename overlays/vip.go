package overlays

import "net/netip"

// VIP configures the floating address that the load balancers share with
// VRRP. It is required on lbmaster and lbbackup nodes and refused on others.
type VIP struct {
	// Interface carries the VIP; "" means eth0.
	Interface string `yaml:"interface,omitempty"`
	// RouterID is the VRRP virtual router id, 1..255.
	RouterID int `yaml:"router_id"`
	// Priority is the VRRP priority, 1..254 (255 only for the address owner).
	Priority int `yaml:"priority"`
	// Address is the floating IP with its prefix length.
	Address netip.Prefix `yaml:"address"`
	// AdvertInterval is the advertisement interval; 0 means 1s.
	AdvertInterval Duration `yaml:"advert_interval,omitempty"`
	// Peers are unicast peers; empty means multicast to 224.0.0.18.
	Peers []netip.Addr `yaml:"peers,omitempty"`
}

func (v *VIP) validate(p *problems, path string, n *Node) {}
