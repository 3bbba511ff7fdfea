package node

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pfKthread is the kernel's PF_KTHREAD task flag.
const pfKthread = 0x00200000

// inInitialNamespace reports whether this process shares its namespace of
// kind ("net", "uts") with PID 1 or with kthreadd (PID 2), comparing the
// device and inode of /proc/self/ns/KIND with theirs. Kernel threads
// always live in the initial namespaces, and PID 1 does on a normal
// machine; either match means "initial". PID 1's entry may be unreadable
// (a protected PID 1, or not root), and PID 2 counts only when it is a
// kernel thread (not in a PID namespace); when neither can be read it
// returns true and an error: callers refuse.
func inInitialNamespace(kind string) (bool, error) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/"+kind, &self); err != nil {
		return true, fmt.Errorf("reading /proc/self/ns/%s: %w", kind, err)
	}
	var errs []error
	compared := false
	for _, pid := range []int{1, 2} {
		if pid == 2 {
			if ok, err := isKernelThread(pid); !ok {
				errs = append(errs, fmt.Errorf("pid 2 is not kthreadd: %v", err))
				continue
			}
		}
		var ref unix.Stat_t
		path := fmt.Sprintf("/proc/%d/ns/%s", pid, kind)
		if err := unix.Stat(path, &ref); err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", path, err))
			continue
		}
		compared = true
		if self.Dev == ref.Dev && self.Ino == ref.Ino {
			return true, nil
		}
	}
	if !compared {
		return true, errors.Join(errs...)
	}
	return false, nil
}

// isKernelThread reports whether pid is a kernel thread (PF_KTHREAD set
// in /proc/PID/stat).
func isKernelThread(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false, err
	}
	flags, err := statFlags(string(b))
	if err != nil {
		return false, err
	}
	return flags&pfKthread != 0, nil
}

// statFlags returns the flags field of a /proc/PID/stat line: the 7th
// field after the command, which is in parentheses and may hold anything.
func statFlags(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command in /proc/PID/stat")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 7 {
		return 0, errors.New("short /proc/PID/stat")
	}
	return strconv.ParseUint(f[6], 10, 64)
}

// setHostname sets the kernel's host name (of this UTS namespace).
func setHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("setting the hostname to %s: %w", name, err)
	}
	return nil
}
