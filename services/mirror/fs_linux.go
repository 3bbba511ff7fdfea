package mirror

import (
	"os"

	"golang.org/x/sys/unix"
)

// haveSyncfs reports whether syncFS flushes every file of the folder's
// file system in one call, so files need no fsync of their own.
const haveSyncfs = true

// syncFS flushes the file system holding dir to disk.
func syncFS(dir *os.File) error {
	return unix.Syncfs(int(dir.Fd()))
}

// exchange swaps the entries at a and b in one step (renameat2 with
// RENAME_EXCHANGE), so that a folder can become a link with no moment
// where neither is there.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
