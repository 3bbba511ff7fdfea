package admin

import "time"

// FirewallStatus is the firewall part of GET /status.
type FirewallStatus struct {
	// Installed reports whether the node's nftables ruleset is in place.
	Installed bool `json:"installed"`
	// Disabled reports that the overlay turns the firewall off.
	Disabled bool `json:"disabled,omitempty"`
	// Error says why the ruleset is not installed, or why reading its
	// counters failed.
	Error string `json:"error,omitempty"`
	// Notes are the ruleset's remarks, such as a weak default.
	Notes []string `json:"notes,omitempty"`
	// Counters are the ruleset's named counters (packets and bytes),
	// e.g. "dropped", "rate_limited", "vrrp_strangers".
	Counters map[string]PacketCount `json:"counters,omitempty"`
}

// PacketCount is one counter's value.
type PacketCount struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// TimeStatus is the clock part of GET /status.
type TimeStatus struct {
	// Trusted is false until a time server has answered (and, on a Pi,
	// the clock has been set from it): until then the node's time may be
	// 1970 or the image's build time.
	Trusted bool `json:"trusted"`
	// Settable reports whether the node sets its clock (PID 1 only).
	Settable bool     `json:"settable"`
	Servers  []string `json:"servers"`
	// Server answered last, at LastSync.
	Server    string    `json:"server,omitempty"`
	LastSync  time.Time `json:"last_sync,omitzero"`
	OffsetMS  float64   `json:"offset_ms"`
	DelayMS   float64   `json:"delay_ms"`
	LastError string    `json:"last_error,omitempty"`
}
