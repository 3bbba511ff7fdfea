package flash

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NotBlockDeviceError says a path given as --device is not a block device.
type NotBlockDeviceError struct {
	Path string
	Mode os.FileMode
}

func (e *NotBlockDeviceError) Error() string {
	what := "not a block device"
	if e.Mode.IsRegular() {
		what = "a regular file, not a block device (to write an image copy to a file, use --to-file)"
	}
	return fmt.Sprintf("%s is %s", e.Path, what)
}

// Lookup describes the block device at path (a /dev node or a symlink to
// one, such as /dev/disk/by-id/...).
func (s System) Lookup(path string) (*Device, error) {
	if err := RefuseForeignPath(path); err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", path, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", path, err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return nil, &NotBlockDeviceError{Path: path, Mode: fi.Mode()}
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return nil, fmt.Errorf("looking up %s: %w", path, err)
	}
	rdev := st.Rdev
	dev := fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
	name, err := s.nameOf(dev)
	if err != nil {
		return nil, err
	}
	d, err := s.Examine(name)
	if err != nil {
		return nil, err
	}
	if d.Dev != dev {
		return nil, fmt.Errorf("%s is device %s but sysfs calls %s %s", path, dev, name, d.Dev)
	}
	d.Path = path
	return d, nil
}

// fileDevice returns the major:minor of the filesystem holding path.
func fileDevice(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)), nil
}

// OpenDevice opens the disk d (which Check accepted) for Write: exclusively
// (O_EXCL makes the kernel refuse a disk that is mounted or claimed, closing
// the gap between the check and the open), with O_DIRECT writes. It checks
// that the device at d.Path is still the one examined and has its size.
func (s System) OpenDevice(d *Device) (*Target, error) {
	if d.Partition {
		return nil, fmt.Errorf("%s is a partition", d.Path)
	}
	f, err := os.OpenFile(d.Path, os.O_WRONLY|unix.O_EXCL|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("opening %s: it is busy (mounted or in use by another program): unmount it and try again", d.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", d.Path, err)
	}
	fail := func(err error) (*Target, error) {
		f.Close()
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fail(fmt.Errorf("checking %s: %w", d.Path, err))
	}
	if dev := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)); st.Mode&unix.S_IFMT != unix.S_IFBLK || dev != d.Dev {
		return fail(fmt.Errorf("%s changed since it was checked (now device %s, was %s): run piimage flash again", d.Path, dev, d.Dev))
	}
	var size uint64
	if err := ioctlPtr(f, unix.BLKGETSIZE64, unsafe.Pointer(&size)); err != nil {
		return fail(fmt.Errorf("reading the size of %s: %w", d.Path, err))
	}
	if int64(size) != d.Size {
		return fail(fmt.Errorf("%s changed size since it was checked (%d bytes, was %d): run piimage flash again", d.Path, size, d.Size))
	}
	lbs, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil || lbs < 512 || lbs&(lbs-1) != 0 {
		lbs = 4096
	}
	t := &Target{Path: d.Path, Size: int64(size), Device: d, align: int64(lbs), zero: zeroWrite, f: f}
	if dir, err := s.entry(d.Name); err == nil {
		if n, _ := strconv.ParseInt(readAttr(filepath.Join(dir, "queue", "write_zeroes_max_bytes")), 10, 64); n > 0 {
			t.zero = zeroOut
		}
	}
	return t, nil
}

func ioctlPtr(f *os.File, req uint, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// zeroOutRange asks the kernel to zero a range of a block device. Only
// called when the device offloads write-zeroes.
func zeroOutRange(f *os.File, off, n int64) error {
	r := [2]uint64{uint64(off), uint64(n)}
	return ioctlPtr(f, unix.BLKZEROOUT, unsafe.Pointer(&r))
}

// openReadBack opens t for verification so that reads come from the
// device or disk, not the page cache: for a device, BLKFLSBUF drops its
// cached pages and the reader uses O_DIRECT; for a file, the written pages
// are dropped with posix_fadvise(DONTNEED) after the sync.
func openReadBack(t *Target) (*os.File, error) {
	if t.Device == nil {
		if err := unix.Fadvise(int(t.f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return nil, fmt.Errorf("dropping cached pages: %w", err)
		}
		f, err := os.Open(t.Path)
		if err != nil {
			return nil, err
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			f.Close()
			return nil, fmt.Errorf("dropping cached pages: %w", err)
		}
		return f, nil
	}
	if err := unix.IoctlSetInt(int(t.f.Fd()), unix.BLKFLSBUF, 0); err != nil {
		return nil, fmt.Errorf("flushing the buffer cache (BLKFLSBUF): %w", err)
	}
	return os.OpenFile(t.Path, os.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
}

// rereadPartitions asks the kernel to read the new partition table, so the
// card's partitions show up; failures (a loop device without partition
// scanning) do not matter.
func (t *Target) rereadPartitions() {
	if t.Device != nil {
		unix.IoctlSetInt(int(t.f.Fd()), unix.BLKRRPART, 0)
	}
}
