package flash

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// zeroMode says how a target gets its all-zero pieces.
type zeroMode int

const (
	zeroWrite zeroMode = iota // written like any data
	zeroSkip                  // left alone: the target already reads zeros (a fresh file)
	zeroOut                   // BLKZEROOUT, which the device offloads
)

// Target is an open destination for Write: a whole-disk block device (from
// OpenDevice) or a new regular file (from CreateFile).
type Target struct {
	// Path is the device or file path.
	Path string
	// Size is how many bytes the target holds (a file: the image size).
	Size int64
	// Device describes the disk; nil for a file.
	Device *Device

	align int64 // offsets and lengths of writes are multiples of this
	zero  zeroMode
	f     *os.File
}

// CreateFile creates the regular file path, which must not exist, sized
// for an image copy of size bytes. The new file reads zeros, so Write
// leaves its all-zero pieces unwritten (the copy is sparse).
func CreateFile(path string, size int64) (*Target, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s already exists: remove it first or name a new file (--to-file never overwrites)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("sizing %s: %w", path, err)
	}
	return &Target{Path: path, Size: size, align: 1, zero: zeroSkip, f: f}, nil
}

// Close closes the target.
func (t *Target) Close() error { return t.f.Close() }

// WriteAt writes p at off on the target.
func (t *Target) WriteAt(p []byte, off int64) (int, error) {
	if err := t.writeFull(p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (t *Target) writeFull(p []byte, off int64) error {
	if _, err := t.f.WriteAt(p, off); err != nil {
		return fmt.Errorf("writing %s at byte %d (%d MiB in): %w", t.Path, off, off>>20, err)
	}
	return nil
}

// zeroRange makes [off, off+n) read as zeros.
func (t *Target) zeroRange(off, n int64) error {
	switch t.zero {
	case zeroSkip:
		return nil
	case zeroOut:
		if err := zeroOutRange(t.f, off, n); err == nil {
			return nil
		}
		// The device refused after all: write the zeros.
		t.zero = zeroWrite
	}
	z := alignedBuf(min(n, subBlock))
	for done := int64(0); done < n; {
		k := min(n-done, int64(len(z)))
		if err := t.writeFull(z[:k], off+done); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// readBack returns a reader of the target that does not go through the
// page cache, and its closer.
func (t *Target) readBack() (io.ReaderAt, func() error, error) {
	f, err := openReadBack(t)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s to verify it: %w", t.Path, err)
	}
	return f, f.Close, nil
}
