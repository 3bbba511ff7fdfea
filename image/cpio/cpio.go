// Package cpio writes "newc" cpio archives (the SVR4 portable format without
// checksums, magic 070701), the format Linux unpacks as an initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst).
//
// Every header is 110 bytes of ASCII: the magic and thirteen 8-digit
// hexadecimal fields (inode, mode, uid, gid, nlink, mtime, filesize,
// devmajor, devminor, rdevmajor, rdevminor, namesize, check), then the
// NUL-terminated name padded to a multiple of 4 bytes, then the data padded
// to a multiple of 4. The archive ends with the entry "TRAILER!!!".
//
// Output is deterministic: inode numbers count up from 1 in write order,
// owners are 0, and every mtime is Options.ModTime.
package cpio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// Magic starts every newc header.
const Magic = "070701"

// trailer names the entry that ends an archive.
const trailer = "TRAILER!!!"

// Mode bits of the file type, as in the cpio header (and stat(2)).
const (
	typeFIFO = 0o010000
	typeChar = 0o020000
	typeDir  = 0o040000
	typeBlk  = 0o060000
	typeReg  = 0o100000
	typeLink = 0o120000
	typeSock = 0o140000
)

// Options says how to write an archive.
type Options struct {
	// ModTime stamps every entry.
	ModTime time.Time
}

// Device is the device number of a character or block device entry. Put
// it in a tree's file info (fstest.MapFile.Sys) to make WriteFS write the
// entry as a device node.
type Device struct {
	Major, Minor uint32
}

// Header describes one entry.
type Header struct {
	// Name is the entry's path, without a leading "/" ("dev/console").
	Name string
	// Mode holds the permission bits and the type: 0 (regular file),
	// fs.ModeDir, fs.ModeSymlink, or fs.ModeDevice (with
	// fs.ModeCharDevice for a character device).
	Mode fs.FileMode
	// Size is the number of data bytes that follow a regular file's
	// header; a symlink's data is its target.
	Size int64
	// Dev is the device number of a device node.
	Dev Device
}

// Writer writes an archive entry by entry: WriteHeader, then exactly Size
// bytes of data through Write, then the next header; Close writes the
// trailer.
type Writer struct {
	w       io.Writer
	opts    Options
	n       int64 // bytes written
	ino     uint32
	remain  int64 // data bytes still owed for the current entry
	pad     int   // padding owed after the current entry's data
	closed  bool
	scratch []byte
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer, opts Options) *Writer {
	return &Writer{w: w, opts: opts}
}

// Written returns the number of bytes written so far.
func (w *Writer) Written() int64 { return w.n }

// WriteHeader starts a new entry.
func (w *Writer) WriteHeader(h *Header) error {
	if w.closed {
		return errors.New("cpio: write after close")
	}
	if err := w.finishEntry(); err != nil {
		return err
	}
	name := strings.TrimPrefix(h.Name, "/")
	if err := checkName(name); err != nil {
		return err
	}
	mode, err := headerMode(h.Mode)
	if err != nil {
		return fmt.Errorf("cpio: %s: %w", name, err)
	}
	size := int64(0)
	switch mode & 0o170000 {
	case typeReg, typeLink:
		size = h.Size
	}
	if size < 0 || size > 0xffffffff {
		return fmt.Errorf("cpio: %s: size %d does not fit the 32-bit size field", name, h.Size)
	}
	nlink := uint32(1)
	if mode&0o170000 == typeDir {
		nlink = 2
	}
	w.ino++
	var rmaj, rmin uint32
	if t := mode & 0o170000; t == typeChar || t == typeBlk {
		rmaj, rmin = h.Dev.Major, h.Dev.Minor
	}
	if err := w.writeHeader(w.ino, mode, nlink, uint32(size), rmaj, rmin, name); err != nil {
		return err
	}
	w.remain = size
	w.pad = pad4(size)
	return nil
}

// Write writes data of the current entry.
func (w *Writer) Write(p []byte) (int, error) {
	if int64(len(p)) > w.remain {
		return 0, fmt.Errorf("cpio: %d bytes written past the entry's size", int64(len(p))-w.remain)
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	w.remain -= int64(n)
	return n, err
}

// Close finishes the last entry and writes the trailer. It does not close
// the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.finishEntry(); err != nil {
		return err
	}
	w.closed = true
	return w.writeHeader(0, 0, 1, 0, 0, 0, trailer)
}

func (w *Writer) finishEntry() error {
	if w.remain > 0 {
		return fmt.Errorf("cpio: entry is %d bytes short of its size", w.remain)
	}
	if w.pad > 0 {
		if err := w.raw(make([]byte, w.pad)); err != nil {
			return err
		}
		w.pad = 0
	}
	return nil
}

func (w *Writer) writeHeader(ino, mode, nlink, size, rmaj, rmin uint32, name string) error {
	namesize := len(name) + 1
	b := w.scratch[:0]
	b = append(b, Magic...)
	mtime := w.opts.ModTime.Unix()
	if mtime < 0 || mtime > 0xffffffff {
		mtime = 0
	}
	for _, v := range []uint32{ino, mode, 0, 0, nlink, uint32(mtime), size, 0, 0, rmaj, rmin, uint32(namesize), 0} {
		b = fmt.Appendf(b, "%08x", v)
	}
	b = append(b, name...)
	b = append(b, 0)
	// The header and name together are padded to a multiple of 4.
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	w.scratch = b
	return w.raw(b)
}

func (w *Writer) raw(b []byte) error {
	n, err := w.w.Write(b)
	w.n += int64(n)
	if err != nil {
		return fmt.Errorf("cpio: writing: %w", err)
	}
	return nil
}

func pad4(n int64) int { return int((4 - n%4) % 4) }

func checkName(name string) error {
	switch {
	case name == "" || name == ".":
		return errors.New("cpio: empty entry name")
	case name == trailer:
		return fmt.Errorf("cpio: %q is reserved for the trailer", name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("cpio: %q: NUL in name", name)
	case !fs.ValidPath(name):
		return fmt.Errorf("cpio: %q: not a clean relative path", name)
	case len(name) > 4095:
		return fmt.Errorf("cpio: %.40q...: name longer than PATH_MAX", name)
	}
	return nil
}

// headerMode converts a Go file mode into the cpio header's mode field.
func headerMode(m fs.FileMode) (uint32, error) {
	perm := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	switch t := m.Type(); {
	case t == 0:
		return typeReg | perm, nil
	case t == fs.ModeDir:
		return typeDir | perm, nil
	case t == fs.ModeSymlink:
		return typeLink | perm, nil
	case t == fs.ModeDevice|fs.ModeCharDevice:
		return typeChar | perm, nil
	case t == fs.ModeDevice:
		return typeBlk | perm, nil
	case t == fs.ModeNamedPipe:
		return typeFIFO | perm, nil
	case t == fs.ModeSocket:
		return typeSock | perm, nil
	}
	return 0, fmt.Errorf("unsupported file type %v", m.Type())
}

// WriteFS writes the tree fsys as a complete archive (entries in
// fs.WalkDir's lexical order, so every folder comes before its contents;
// the root itself is not an entry) and returns the bytes written. Regular
// files, folders, symlinks (target from fs.ReadLink), named pipes and
// device nodes (file info whose Sys() is a Device) are written with the
// entries' permission bits; owners are root.
func WriteFS(w io.Writer, fsys fs.FS, opts Options) (int64, error) {
	cw := NewWriter(w, opts)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h := &Header{Name: p, Mode: info.Mode()}
		switch t := info.Mode().Type(); {
		case t == 0:
			h.Size = info.Size()
			if err := cw.WriteHeader(h); err != nil {
				return err
			}
			return copyFile(cw, fsys, p, h.Size)
		case t == fs.ModeSymlink:
			target, err := fs.ReadLink(fsys, p)
			if err != nil {
				return err
			}
			h.Size = int64(len(target))
			if err := cw.WriteHeader(h); err != nil {
				return err
			}
			_, err = io.WriteString(cw, target)
			return err
		case t&fs.ModeDevice != 0:
			dev, ok := info.Sys().(Device)
			if !ok {
				if pd, ok2 := info.Sys().(*Device); ok2 && pd != nil {
					dev, ok = *pd, true
				}
			}
			if !ok {
				return fmt.Errorf("cpio: %s: device node without a cpio.Device in its file info", p)
			}
			h.Dev = dev
		}
		return cw.WriteHeader(h)
	})
	if err != nil {
		return cw.Written(), fmt.Errorf("writing cpio archive: %w", err)
	}
	if err := cw.Close(); err != nil {
		return cw.Written(), fmt.Errorf("writing cpio archive: %w", err)
	}
	return cw.Written(), nil
}

func copyFile(w io.Writer, fsys fs.FS, name string, size int64) error {
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return fmt.Errorf("copying %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("copying %s: read %d of %d bytes (file changed?)", name, n, size)
	}
	return nil
}
