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
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var masters, others []string
		for _, r := range s.Stats().Routers {
			if r.State == Master.String() {
				masters = append(masters, fmt.Sprintf("router %d", r.VRID))
			} else if r.Master.IsValid() {
				others = append(others, fmt.Sprintf("router %d to %s", r.VRID, r.Master))
			}
		}
		if len(masters) == 0 {
			if len(others) == 0 {
				return "handed over", nil
			}
			return "handed over: " + strings.Join(others, ", "), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("vip: handover: %s still master: %w", strings.Join(masters, ", "), ctx.Err())
		case <-tick.C:
		}
	}
}

var _ services.Controller = (*Service)(nil)
