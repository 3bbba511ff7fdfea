//go:build !linux

package mirror

import (
	"errors"
	"os"
)

// haveSyncfs is false here: each file is fsynced before it is closed.
const haveSyncfs = false

func syncFS(dir *os.File) error { return nil }

// exchange is not available here: a web root folder cannot become a
// link to generations in one step.
func exchange(a, b string) error {
	return errors.New("replacing a folder by a link in one step needs Linux's renameat2")
}
