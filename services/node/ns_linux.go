package node

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// inInitialNamespace reports whether this process shares its namespace of
// kind ("net", "uts") with PID 1, comparing the device and inode of
// /proc/self/ns/KIND and /proc/1/ns/KIND. Reading PID 1's needs root (or
// ptrace rights); then it returns an error, which callers treat as "yes".
func inInitialNamespace(kind string) (bool, error) {
	var self, init unix.Stat_t
	if err := unix.Stat("/proc/self/ns/"+kind, &self); err != nil {
		return true, fmt.Errorf("reading /proc/self/ns/%s: %w", kind, err)
	}
	if err := unix.Stat("/proc/1/ns/"+kind, &init); err != nil {
		return true, fmt.Errorf("reading /proc/1/ns/%s: %w", kind, err)
	}
	return self.Dev == init.Dev && self.Ino == init.Ino, nil
}

// setHostname sets the kernel's host name (of this UTS namespace).
func setHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("setting the hostname to %s: %w", name, err)
	}
	return nil
}
