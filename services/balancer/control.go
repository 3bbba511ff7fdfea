package balancer

import (
	"context"
	"fmt"
	"time"

	"github.com/piimage/piimage/services"
)

// Control runs a command from the node's admin API: "drain NAME" sends no
// new request or connection to backend NAME and returns once those in
// flight have finished; "undrain NAME" gives it traffic again. The flag
// lasts until the next reload or restart, which return to the overlay's
// drain setting.
func (b *Balancer) Control(ctx context.Context, command, arg string) (string, error) {
	var drain bool
	switch command {
	case "drain":
		drain = true
	case "undrain":
	default:
		return "", &services.UnknownCommandError{Service: "balancer", Command: command, Known: []string{"drain", "undrain"}}
	}
	b.mu.Lock()
	be := b.pool.Load().byName[arg]
	b.mu.Unlock()
	if be == nil {
		return "", fmt.Errorf("balancer: no backend named %q", arg)
	}
	be.drain.Store(drain)
	be.refresh()
	b.rebuild()
	b.log.Info("backend drain set at run time", "backend", arg, "drain", drain)
	if !drain {
		return fmt.Sprintf("%s takes traffic again", arg), nil
	}
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for be.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("balancer: draining %s: %d requests still in flight: %w", arg, be.inflight.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return fmt.Sprintf("%s drained in %.0f ms", arg, float64(time.Since(start))/float64(time.Millisecond)), nil
}

var _ services.Controller = (*Balancer)(nil)
