package vip

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/piimage/piimage/services"
)

// Control runs a command from the node's admin API: "handover" gives every
// VIP this node holds to the best backup (Handover) and returns once no
// router here is master any more, naming the new masters.
func (s *Service) Control(ctx context.Context, command, arg string) (string, error) {
	if command != "handover" {
		return "", &services.UnknownCommandError{Service: "vip", Command: command, Known: []string{"handover"}}
	}
	if err := s.Handover(); err != nil {
		return "", err
	}
	s.mu.Lock()
	run := s.run
	s.mu.Unlock()
	if err := waitNoMaster(ctx, run); err != nil {
		var masters []string
		for _, r := range s.Stats().Routers {
			if r.State == Master.String() {
				masters = append(masters, fmt.Sprintf("router %d", r.VRID))
			}
		}
		return "", fmt.Errorf("vip: handover: %s still master: %w", strings.Join(masters, ", "), err)
	}
	var others []string
	for _, r := range s.Stats().Routers {
		if r.Master.IsValid() {
			others = append(others, fmt.Sprintf("router %d to %s", r.VRID, r.Master))
		}
	}
	if len(others) == 0 {
		return "handed over", nil
	}
	return "handed over: " + strings.Join(others, ", "), nil
}

// waitNoMaster polls until no router of run is master (the successors
// answer for the VIPs), or returns ctx's error.
func waitNoMaster(ctx context.Context, run []*runner) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		master := false
		for _, r := range run {
			master = master || r.stats().State == Master.String()
		}
		if !master {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

var _ services.Controller = (*Service)(nil)
