//go:build !linux

package node

// restrictService does nothing off Linux.
func restrictService(name string) error { return nil }

// machineInit is false off Linux.
func machineInit() bool { return false }
