package node

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// restrictedEnv marks a service process that already dropped its
// privileges and re-executed itself.
const restrictedEnv = "PIIMAGE_RESTRICTED"

// serviceCapabilities returns the capabilities a service keeps, and false
// for a service this table does not know (which keeps everything).
//
// The services run as root; without capabilities root is only the owner
// of root's files. Kept: binding ports below 1024 (every service: the
// ports are the overlay's choice), and for vip adding addresses and
// sending raw VRRP and ARP; mirror may replace files of any owner and mode
// in the web root it manages.
func serviceCapabilities(name string) ([]int, bool) {
	switch name {
	case "web", "balancer":
		return []int{unix.CAP_NET_BIND_SERVICE}, true
	case "vip":
		return []int{unix.CAP_NET_ADMIN, unix.CAP_NET_RAW, unix.CAP_NET_BIND_SERVICE}, true
	case "mirror":
		return []int{unix.CAP_NET_BIND_SERVICE, unix.CAP_DAC_OVERRIDE, unix.CAP_FOWNER}, true
	}
	return nil, false
}

// restrictService drops, in the service-mode child, every capability the
// service does not need: it removes the others from the bounding set,
// clears the inheritable and ambient sets and sets no_new_privs, then
// re-executes the binary. Capabilities belong to threads and the Go
// runtime has many, so only a fresh execve from the one restricted thread
// makes every thread of the process restricted: after it, a root process's
// permitted and effective sets are the bounding set. It returns nil at
// once in the re-executed process, for a service it does not know, and
// when the process is not root; on success it does not return.
func restrictService(name string) error {
	keep, known := serviceCapabilities(name)
	if !known || os.Geteuid() != 0 {
		return nil
	}
	if os.Getenv(restrictedEnv) == "1" {
		if nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || nnp != 1 {
			return fmt.Errorf("re-executed without no_new_privs (%v)", err)
		}
		return nil
	}
	runtime.LockOSThread() // never unlocked: this thread execs or the process exits soon
	last, err := lastCap()
	if err != nil {
		return err
	}
	kept := map[int]bool{}
	for _, c := range keep {
		kept[c] = true
	}
	for c := 0; c <= last; c++ {
		if kept[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clearing the inheritable capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing the ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	env := append(os.Environ(), restrictedEnv+"=1")
	if err := syscall.Exec("/proc/self/exe", os.Args, env); err != nil {
		return fmt.Errorf("re-executing with fewer capabilities: %w", err)
	}
	return nil // not reached
}

// lastCap reads the highest capability number the kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("reading cap_last_cap: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
