// Package services holds the contract every service on a node follows.
// The services themselves live in the sub-packages: balancer, vip, web,
// mirror, and the init's own parts (supervise, netconf, admin, node).
package services

import (
	"context"
	"log/slog"

	"github.com/piimage/piimage/overlays"
)

// Service is one long-running job of a node: the balancer, the VIP, the web
// server or the file mirror.
type Service interface {
	// Run serves until ctx is done, then stops gracefully (in-flight work
	// finishes within the service's grace period) and returns nil. Any other
	// return is a failure the supervisor restarts with backoff.
	Run(ctx context.Context) error
	// Reload applies a changed node configuration without dropping traffic
	// in flight. A configuration the service cannot apply is refused with an
	// error, and the service keeps running on the old one.
	Reload(node *overlays.Node) error
	// Health reports nil when the service does its job right now.
	Health() error
}

// Factory builds a service from the node's validated overlay. It must not
// open sockets or touch the system: Run does that.
type Factory func(node *overlays.Node, log *slog.Logger) (Service, error)
