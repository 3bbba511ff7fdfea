// Package services holds the contract every service on a node follows.
// The services themselves live in the sub-packages: balancer, vip, web,
// mirror, and the init's own parts (supervise, netconf, admin, node).
package services

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

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

// NetworkCheckedEnv is set to "1" in the environment of the services the
// init starts when it has checked that they may change the network
// namespace they run in: as PID 1 on a node, or in process mode inside a
// network namespace other than the machine's initial one. A service that
// cannot check that itself (its reduced capabilities may not read PID 1's
// namespace) relies on it.
const NetworkCheckedEnv = "PIIMAGE_NETWORK_CHECKED"

// Controller is a service that takes commands at run time from the node's
// admin API, for planned operations such as a rollout: the VIP's
// "handover", the balancer's "drain" and "undrain" of one backend.
// Commands do not persist: a restart or a reload returns the service to
// its overlay's configuration.
type Controller interface {
	// Control runs command with its argument ("" when it takes none) and
	// returns a one-line account of what it did. It may wait for the
	// command's effect (a drain waits for requests in flight) until ctx is
	// done. An unknown command is an *UnknownCommandError.
	Control(ctx context.Context, command, arg string) (string, error)
}

// UnknownCommandError is a command a Controller does not know.
type UnknownCommandError struct {
	Service, Command string
	// Known lists the commands the service knows.
	Known []string
}

func (e *UnknownCommandError) Error() string {
	return fmt.Sprintf("%s knows no command %q (known: %s)", e.Service, e.Command, strings.Join(e.Known, ", "))
}
