//go:build !linux

package node

import (
	"context"
	"errors"
	"fmt"
	"io"
)

var errUnsupported = errors.New("needs Linux")

// pid1Main cannot boot anything off Linux.
func pid1Main(ctx context.Context, stdout io.Writer, registry Registry) {
	fmt.Fprintln(stdout, "piimage: PID 1 mode needs Linux")
	select {}
}

// inInitialNamespace cannot tell off Linux, which callers treat as "yes".
func inInitialNamespace(kind string) (bool, error) { return true, errUnsupported }

func setHostname(name string) error { return fmt.Errorf("setting the hostname: %w", errUnsupported) }
