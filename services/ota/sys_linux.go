package ota

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func syncFS(f *os.File) error { return unix.Syncfs(int(f.Fd())) }

// dropCache asks the kernel to forget f's cached pages, so that a read
// after a sync comes from the medium.
func dropCache(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// RebootTryboot restarts the machine with the argument "0 tryboot", which
// the Raspberry Pi firmware driver turns into a one-shot boot from
// tryboot.txt (Pi 4 and later). Like reboot(2) it returns only on failure;
// the caller must have synced and unmounted first.
func RebootTryboot() error {
	arg, err := unix.BytePtrFromString("0 tryboot")
	if err != nil {
		return err
	}
	_, _, errno := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2,
		unix.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(arg)), 0, 0)
	if errno != 0 {
		return &os.SyscallError{Syscall: "reboot", Err: errno}
	}
	return nil
}
