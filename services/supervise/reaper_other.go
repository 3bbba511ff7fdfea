//go:build !linux

package supervise

import (
	"context"
	"errors"
	"log/slog"
	"syscall"
)

var errUnsupported = errors.New("supervising processes needs Linux")

// Reaper is the process's one owner of wait4(-1); only Linux has it.
type Reaper struct{}

// NewReaper returns a reaper whose Start always fails off Linux.
func NewReaper(log *slog.Logger) *Reaper { return &Reaper{} }

// SetSubreaper fails off Linux.
func SetSubreaper() (restore func(), err error) { return nil, errUnsupported }

// Run returns when ctx is done.
func (r *Reaper) Run(ctx context.Context) { <-ctx.Done() }

// Start fails off Linux.
func (r *Reaper) Start(cmd Command, exited func(Exit)) (int, error) { return 0, errUnsupported }

// Kill fails off Linux.
func (r *Reaper) Kill(pid int, sig syscall.Signal) error { return errUnsupported }
