//go:build !linux

package node

import "context"

// loadWiFiDriver does nothing off Linux.
func (r *instance) loadWiFiDriver(ctx context.Context) {}
