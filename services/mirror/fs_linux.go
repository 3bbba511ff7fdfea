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
