// Package ota is a node's update agent. It receives a payload stream
// (image/ota's format), checks its signature and board before writing
// anything, writes the inactive root partition and the inactive slot folder
// on the boot partition, verifies every hash after writing, and arranges a
// trial boot of the new slot. At the next boot, Boot tells the init whether
// it runs a trial (OnBoot); the init then runs the role's health checks (Checker) and
// calls Commit or Rollback.
//
// # Power loss
//
// A card whose power is cut at any moment boots the old or the new slot,
// never neither. The rules that make it so:
//
//   - The slot being written is never the one config.txt names (nor the one
//     tryboot.txt names: it is pointed at the running slot first).
//   - A slot folder is complete only when its manifest.json exists; it is
//     removed first and written last, after the files are synced and
//     verified.
//   - Files are written under temporary names, synced, verified, then
//     renamed; config.txt, tryboot.txt and the state file are replaced by
//     write, sync, rename, sync.
//   - The trial state is written before the switch to the new slot
//     (config.txt on boards without tryboot, tryboot.txt on the Pi 4), and
//     config.txt is switched back before the state records a rollback.
//
// Between each group of writes the agent calls Dir.Sync (syncfs on the
// FAT): the tests cut the power after every byte count and let any subset
// of the writes since the last sync survive.
package ota

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

// Dir is the boot partition as the agent reads and writes it. Names are
// slash-separated and relative.
type Dir interface {
	ReadFile(name string) ([]byte, error)
	// Open opens a file for reading.
	Open(name string) (io.ReadCloser, error)
	// Create creates or truncates a file for writing.
	Create(name string) (io.WriteCloser, error)
	// Rename replaces to with from.
	Rename(from, to string) error
	// Remove removes a file or an empty folder.
	Remove(name string) error
	MkdirAll(name string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	// Sync makes everything written so far durable (syncfs), and lets
	// later reads of synced files come from the medium.
	Sync() error
}

// Device is a root partition.
type Device interface {
	io.ReaderAt
	io.WriterAt
	// Size is the partition's size in bytes.
	Size() int64
	// Sync makes the writes durable and drops cached pages, so that a
	// read after it comes from the medium.
	Sync() error
	Close() error
}

// OpenDevice opens the root partition of slot "a" or "b".
type OpenDevice func(slot string) (Device, error)

// OSDir is a Dir on a folder of the local file system (the mounted boot
// partition, /boot). Every name stays inside the folder. It holds no open
// file between calls, so the folder can be unmounted at shutdown.
type OSDir struct {
	path string
}

// NewOSDir returns the Dir of folder dir, which must exist.
func NewOSDir(dir string) (*OSDir, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	r.Close()
	return &OSDir{path: dir}, nil
}

// Close does nothing; OSDir keeps nothing open.
func (d *OSDir) Close() error { return nil }

// with runs f on the folder opened as an os.Root.
func (d *OSDir) with(f func(r *os.Root) error) error {
	r, err := os.OpenRoot(d.path)
	if err != nil {
		return err
	}
	defer r.Close()
	return f(r)
}

// ReadFile reads a file.
func (d *OSDir) ReadFile(name string) (b []byte, err error) {
	err = d.with(func(r *os.Root) error { b, err = r.ReadFile(name); return err })
	return b, err
}

// Open opens a file for reading.
func (d *OSDir) Open(name string) (f io.ReadCloser, err error) {
	err = d.with(func(r *os.Root) error { f, err = r.Open(name); return err })
	return f, err
}

// Create creates or truncates a file.
func (d *OSDir) Create(name string) (f io.WriteCloser, err error) {
	err = d.with(func(r *os.Root) error {
		f, err = r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		return err
	})
	return f, err
}

// Rename renames a file, replacing to.
func (d *OSDir) Rename(from, to string) error {
	return d.with(func(r *os.Root) error { return r.Rename(from, to) })
}

// Remove removes a file or an empty folder.
func (d *OSDir) Remove(name string) error {
	return d.with(func(r *os.Root) error { return r.Remove(name) })
}

// MkdirAll creates a folder and its parents.
func (d *OSDir) MkdirAll(name string) error {
	return d.with(func(r *os.Root) error { return r.MkdirAll(name, 0o755) })
}

// ReadDir lists a folder.
func (d *OSDir) ReadDir(name string) (ents []fs.DirEntry, err error) {
	err = d.with(func(r *os.Root) error { ents, err = fs.ReadDir(r.FS(), name); return err })
	return ents, err
}

// Sync syncs the whole file system the folder is on.
func (d *OSDir) Sync() error {
	f, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syncFS(f); err != nil {
		return &os.PathError{Op: "syncfs", Path: d.path, Err: err}
	}
	return nil
}

// FileDevice is a Device on an open file or block device.
type FileDevice struct {
	*os.File
	size int64
}

// OpenFileDevice opens a file or block device read-write as a Device.
func OpenFileDevice(name string) (*FileDevice, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sizing %s: %w", name, err)
	}
	return &FileDevice{File: f, size: size}, nil
}

// Size is the device's size.
func (d *FileDevice) Size() int64 { return d.size }

// Sync flushes the device and drops its cached pages.
func (d *FileDevice) Sync() error {
	if err := d.File.Sync(); err != nil {
		return err
	}
	dropCache(d.File)
	return nil
}

// writeAtomic replaces name with data: a temporary file, sync, rename,
// sync. A power cut leaves the old or the new content.
func writeAtomic(d Dir, name string, data []byte) error {
	tmp := name + tempSuffix
	if err := writeFile(d, tmp, data); err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing before replacing %s: %w", name, err)
	}
	if err := d.Rename(tmp, name); err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing after replacing %s: %w", name, err)
	}
	return nil
}

func writeFile(d Dir, name string, data []byte) error {
	if dir := path.Dir(name); dir != "." {
		if err := d.MkdirAll(dir); err != nil {
			return err
		}
	}
	w, err := d.Create(name)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// removeIfExists removes name; a missing file is fine.
func removeIfExists(d Dir, name string) error {
	if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
