//go:build !linux

package node

// restrictService does nothing off Linux.
func restrictService(name string) error { return nil }
