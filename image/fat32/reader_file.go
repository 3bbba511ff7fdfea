package fat32

import (
	"errors"
	"io"
	"io/fs"
	"time"
)

// fileInfo describes a directory entry as an fs.FileInfo.
type fileInfo struct{ e dirent }

func (fi fileInfo) Name() string       { return fi.e.name }
func (fi fileInfo) ModTime() time.Time { return fi.e.mtime }
func (fi fileInfo) IsDir() bool        { return fi.e.isDir() }
func (fi fileInfo) Sys() any           { return nil }

func (fi fileInfo) Size() int64 {
	if fi.e.isDir() {
		return 0
	}
	return int64(fi.e.size)
}

// Mode maps the read-only attribute to permissions: FAT has no others.
func (fi fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(0o644)
	if fi.e.attr&attrReadOnly != 0 {
		m = 0o444
	}
	if fi.e.isDir() {
		m |= fs.ModeDir | 0o111
	}
	return m
}

// file is an open regular file. It implements io.ReaderAt and io.Seeker.
type file struct {
	r    io.ReaderAt
	info fileInfo
	runs []extent // the clusters, covering at least info.Size() bytes
	pos  int64
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

func (f *file) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.pos)
	f.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads len(p) bytes from offset off of the file.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.info.Name(), Err: fs.ErrInvalid}
	}
	size := f.info.Size()
	if off >= size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), size-off)
	done := int64(0)
	skip := off
	for _, r := range f.runs {
		if done == want {
			break
		}
		if skip >= r.n {
			skip -= r.n
			continue
		}
		k := min(r.n-skip, want-done)
		n, err := f.r.ReadAt(p[done:done+k], r.off+skip)
		done += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && int64(n) == k) {
			return int(done), err
		}
		skip = 0
	}
	if done < int64(len(p)) {
		return int(done), io.EOF
	}
	return int(done), nil
}

// Seek sets the offset of the next Read.
func (f *file) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += f.info.Size()
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.info.Name(), Err: fs.ErrInvalid}
	}
	f.pos = offset
	return offset, nil
}

// dirFile is an open directory.
type dirFile struct {
	info fileInfo
	ents []dirent
	pos  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.Name(), Err: errors.New("is a directory")}
}

// ReadDir returns the next n entries in directory order, as fs.ReadDirFile says.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.ents[d.pos:]
	if n > 0 {
		if len(rest) == 0 {
			return nil, io.EOF
		}
		rest = rest[:min(n, len(rest))]
	}
	out := make([]fs.DirEntry, len(rest))
	for i, e := range rest {
		out[i] = fs.FileInfoToDirEntry(fileInfo{e})
	}
	d.pos += len(rest)
	return out, nil
}
