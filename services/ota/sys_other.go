//go:build !linux

package ota

import (
	"errors"
	"os"
)

func syncFS(f *os.File) error { return f.Sync() }

func dropCache(*os.File) {}

// RebootTryboot is only available on Linux.
func RebootTryboot() error { return errors.New("reboot with tryboot: only on Linux") }
