package node

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// restartSelf re-executes this binary with the same arguments and
// environment: process mode's reboot. It returns only on failure.
func restartSelf() error {
	if err := unix.Exec("/proc/self/exe", os.Args, os.Environ()); err != nil {
		return fmt.Errorf("re-executing the init: %w", err)
	}
	return nil
}
