package ext4

import (
	"encoding/binary"
	"io"
	"io/fs"
	"slices"
	"time"
)

// lazyFS is a flat tree of large generated files: each is zero except for
// its offset written as 8 bytes at every multiple of stride, so a huge file
// costs no memory and a misplaced block shows up when read back.
type lazyFS struct {
	files  map[string]int64 // name to size
	stride int64
}

func (l lazyFS) Open(name string) (fs.File, error) {
	if name == "." {
		return &lazyDir{l: l}, nil
	}
	size, ok := l.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &lazyFile{info: lazyInfo{name, size, 0o644}, stride: l.stride}, nil
}

// lazyByte returns byte off of a lazyFS file.
func lazyByte(off, stride int64) byte {
	base := off - off%stride
	if off-base >= 8 {
		return 0
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(base))
	return b[off-base]
}

type lazyFile struct {
	info   lazyInfo
	off    int64
	stride int64
}

func (f *lazyFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *lazyFile) Close() error               { return nil }
func (f *lazyFile) Read(p []byte) (int, error) {
	if f.off >= f.info.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), f.info.size-f.off))
	clear(p[:n])
	// Only the first 8 bytes of each stride are not zero.
	for s := f.off - f.off%f.stride; s < f.off+int64(n); s += f.stride {
		for i := s; i < s+8; i++ {
			if i >= f.off && i < f.off+int64(n) {
				p[i-f.off] = lazyByte(i, f.stride)
			}
		}
	}
	f.off += int64(n)
	return n, nil
}

type lazyDir struct {
	l    lazyFS
	done bool
}

func (d *lazyDir) Stat() (fs.FileInfo, error) { return lazyInfo{".", 0, fs.ModeDir | 0o755}, nil }
func (d *lazyDir) Close() error               { return nil }
func (d *lazyDir) Read([]byte) (int, error)   { return 0, io.EOF }
func (d *lazyDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.done {
		if n > 0 {
			return nil, io.EOF
		}
		return nil, nil
	}
	d.done = true
	var names []string
	for name := range d.l.files {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []fs.DirEntry
	for _, name := range names {
		out = append(out, fs.FileInfoToDirEntry(lazyInfo{name, d.l.files[name], 0o644}))
	}
	return out, nil
}

type lazyInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (i lazyInfo) Name() string       { return i.name }
func (i lazyInfo) Size() int64        { return i.size }
func (i lazyInfo) Mode() fs.FileMode  { return i.mode }
func (i lazyInfo) ModTime() time.Time { return time.Time{} }
func (i lazyInfo) IsDir() bool        { return i.mode.IsDir() }
func (i lazyInfo) Sys() any           { return nil }
