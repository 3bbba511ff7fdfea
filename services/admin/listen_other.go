//go:build !linux

package admin

import (
	"context"
	"fmt"
	"net"
)

// Listen opens a TCP listener on addr (without IP_FREEBIND off Linux).
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ln, nil
}
