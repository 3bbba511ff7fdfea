package balancer

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loops' reads and writes are on non-blocking sockets: they
// never block, so they are made as raw system calls, which keep the
// loop's P instead of telling the scheduler about a call that may block
// (the runtime would otherwise hand the P to another thread whenever a
// loopback write, which does the receiver's TCP work too, runs long).

func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	// recvfrom rather than read: the socket call skips the file layer.
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// rawWrite sends p; a peer that is gone is EPIPE, never SIGPIPE.
func rawWrite(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// pollNow returns the events that are ready without waiting.
func pollNow(ep int, evs []unix.EpollEvent) int {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(n)
}
