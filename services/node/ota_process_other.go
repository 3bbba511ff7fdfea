//go:build !linux

package node

// restartSelf cannot re-execute off Linux.
func restartSelf() error { return errUnsupported }
