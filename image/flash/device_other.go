//go:build !linux

package flash

import (
	"errors"
	"fmt"
	"os"
)

// errUnsupported is returned for device access outside Linux.
var errUnsupported = errors.New("piimage flash writes devices on Linux only for now; --to-file works everywhere")

// NotBlockDeviceError says a path given as --device is not a block device.
type NotBlockDeviceError struct {
	Path string
	Mode os.FileMode
}

func (e *NotBlockDeviceError) Error() string { return e.Path + " is not a block device" }

// Lookup describes the block device at path; Linux only.
func (s System) Lookup(path string) (*Device, error) {
	if err := RefuseForeignPath(path); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("looking up %s: %w", path, errUnsupported)
}

// OpenDevice opens a disk for Write; Linux only.
func (s System) OpenDevice(d *Device) (*Target, error) { return nil, errUnsupported }

func fileDevice(string) (string, error) { return "", errUnsupported }

func zeroOutRange(*os.File, int64, int64) error { return errUnsupported }

func openReadBack(t *Target) (*os.File, error) { return os.Open(t.Path) }

func (t *Target) rereadPartitions() {}
