// Package overlays reads and validates the per-node configuration ("overlay")
// that a person writes by hand: one YAML file per node naming its hostname,
// role, addresses and the settings of the services its role runs.
//
// Parse decodes strictly (unknown fields, wrong types, duplicate keys and
// extra documents are errors) and then runs Validate, which reports every bad
// field with its file, line and field path.
package overlays

import (
	"fmt"
	"net/netip"
	"time"
)

// Roles a node can have.
const (
	RoleLBMaster = "lbmaster"
	RoleLBBackup = "lbbackup"
	RoleWeb      = "web"
)

// Boards a node can run on.
const (
	BoardPi2 = "pi2"
	BoardPi3 = "pi3"
	BoardPi4 = "pi4"
)

// Defaults for optional fields, applied by the OrDefault accessors.
const (
	DefaultBoard     = BoardPi3
	DefaultAdminPort = 9000
)

// Node is one node's configuration, as read from its overlay file. The YAML
// keys are the snake_case names in the field tags. Parse and Load return
// only validated Nodes; a Node built in Go should be checked with Validate.
type Node struct {
	// Hostname is an RFC 1123 host name in lower case, e.g. "web01".
	Hostname string `yaml:"hostname"`
	// Role is RoleLBMaster, RoleLBBackup or RoleWeb.
	Role string `yaml:"role"`
	// Board is BoardPi2, BoardPi3 or BoardPi4; read it with BoardOrDefault.
	Board string `yaml:"board,omitempty"`
	// Interfaces holds the static network configuration; eth0 is required.
	Interfaces Interfaces `yaml:"interfaces"`
	// DNS lists the name servers, IPv4 only.
	DNS []netip.Addr `yaml:"dns,omitempty"`
	// Admin configures the admin API.
	Admin Admin `yaml:"admin,omitempty"`
	// VIP is required on load balancers and refused on web nodes.
	VIP *VIP `yaml:"vip,omitempty"`
	// Balancer is allowed on load balancers only.
	Balancer *Balancer `yaml:"balancer,omitempty"`
	// Web is allowed on web nodes only; nil means all defaults.
	Web *Web `yaml:"web,omitempty"`
	// Mirror is allowed on web nodes only; nil means no mirroring.
	Mirror *Mirror `yaml:"mirror,omitempty"`
	// Firewall configures the inbound packet filter; nil means the defaults.
	Firewall *Firewall `yaml:"firewall,omitempty"`
	// Time configures the SNTP client; nil means eth0's gateway.
	Time *Time `yaml:"time,omitempty"`

	// File is the path the node was read from; empty for nodes built in Go.
	File string `yaml:"-"`
}

// Interfaces holds the node's network interfaces. Eth0 is required.
type Interfaces struct {
	Eth0  *Interface `yaml:"eth0"`
	Wlan0 *Interface `yaml:"wlan0,omitempty"`
}

// Interface is the static configuration of one network interface.
type Interface struct {
	// Address is the interface's IPv4 address with its prefix length,
	// e.g. 192.168.1.14/24.
	Address netip.Prefix `yaml:"address"`
	// Gateway is the default route's next hop; the zero Addr means none.
	Gateway netip.Addr `yaml:"gateway,omitempty"`
	// SSID, PSK, PMK, Country and Metric configure Wi-Fi on wlan0
	// (wlan.go).
	SSID    string `yaml:"ssid,omitempty"`
	PSK     string `yaml:"psk,omitempty"`
	PMK     string `yaml:"pmk,omitempty"`
	Country string `yaml:"country,omitempty"`
	Metric  int    `yaml:"metric,omitempty"`
}

// Admin configures the node's admin API.
type Admin struct {
	// Port is the admin API's TCP port; 0 means DefaultAdminPort.
	Port int `yaml:"port,omitempty"`
}

// PortOrDefault returns a.Port, or DefaultAdminPort when it is unset.
func (a Admin) PortOrDefault() int {
	if a.Port == 0 {
		return DefaultAdminPort
	}
	return a.Port
}

// BoardOrDefault returns n.Board, or DefaultBoard when it is unset.
func (n *Node) BoardOrDefault() string {
	if n.Board == "" {
		return DefaultBoard
	}
	return n.Board
}

// Eth0Address returns eth0's address, or the zero Prefix when eth0 is unset.
func (n *Node) Eth0Address() netip.Prefix {
	if n.Interfaces.Eth0 == nil {
		return netip.Prefix{}
	}
	return n.Interfaces.Eth0.Address
}

// IsLB reports whether the node is a load balancer (lbmaster or lbbackup).
func (n *Node) IsLB() bool {
	return n.Role == RoleLBMaster || n.Role == RoleLBBackup
}

// Duration is a time.Duration written in YAML as "500ms", "2s" or "1m30s".
type Duration struct {
	time.Duration
}

// UnmarshalText parses a duration such as "500ms".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 500ms or 2s", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}
