//go:build !linux

package firewall

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("nftables needs Linux")

// ErrInitialNamespace is returned when the target is the machine's initial
// network namespace and AllowInitial is not set.
var ErrInitialNamespace = errors.New("refusing to touch the firewall of the machine's initial network namespace")

// Applier installs rulesets into one network namespace (Linux only).
type Applier struct {
	NetNS        *os.File
	AllowInitial bool
}

// Counter is the value of one named counter.
type Counter struct {
	Name           string
	Packets, Bytes uint64
}

// Apply fails off Linux.
func (a *Applier) Apply(rs *Ruleset) error { return errUnsupported }

// Counters fails off Linux.
func (a *Applier) Counters() ([]Counter, error) { return nil, errUnsupported }
