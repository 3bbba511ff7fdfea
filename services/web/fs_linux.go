package web

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// tree is an open web root. Files are opened relative to the root's file
// descriptor with openat2(RESOLVE_BENEATH), so the kernel itself refuses
// any path or symbolic link that leads out of the root (unless
// symlinksOutside is set, which follows links anywhere).
type tree struct {
	path            string
	dir             *os.File // keeps the descriptor open while the tree is used
	fd              int
	symlinksOutside bool
	id              fileID
	fallbackOnce    sync.Once
	fallback        *os.Root // for kernels without openat2 (before 5.6)
	fallbackErr     error
}

// openTree opens the web root at path.
func openTree(path string, symlinksOutside bool) (*tree, error) {
	dir, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening web root: %w", err)
	}
	fi, err := dir.Stat()
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("opening web root: %w", err)
	}
	if !fi.IsDir() {
		dir.Close()
		return nil, fmt.Errorf("opening web root: %w", &fs.PathError{Op: "open", Path: path, Err: syscall.ENOTDIR})
	}
	return &tree{path: path, dir: dir, fd: int(dir.Fd()), symlinksOutside: symlinksOutside, id: idOf(fi)}, nil
}

// close closes the root; only for trees never handed to a request.
func (t *tree) close() { t.dir.Close() }

// open opens rel (relative, "" for the root) and returns it with its
// identity. Only regular files and directories open; everything else is
// errNotServable.
func (t *tree) open(rel string) (handle, fileID, error) {
	name := relOrDot(rel)
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	var fd int
	var err error
	if t.symlinksOutside {
		fd, err = unix.Openat(t.fd, name, flags, 0)
	} else {
		how := unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
		for {
			fd, err = unix.Openat2(t.fd, name, &how)
			if err != unix.EINTR && err != unix.EAGAIN {
				break
			}
		}
		if err == unix.ENOSYS {
			runtime.KeepAlive(t.dir)
			return t.openFallback(name)
		}
	}
	runtime.KeepAlive(t.dir)
	if err != nil {
		return nil, fileID{}, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fileID{}, &fs.PathError{Op: "fstat", Path: name, Err: err}
	}
	id := idOfStat(&st)
	if !id.isRegular() && !id.isDir() {
		unix.Close(fd)
		return nil, fileID{}, &fs.PathError{Op: "open", Path: name, Err: errNotServable}
	}
	return &fdHandle{fd: fd}, id, nil
}

// openFallback opens name through os.Root, which walks the path itself.
func (t *tree) openFallback(name string) (handle, fileID, error) {
	t.fallbackOnce.Do(func() { t.fallback, t.fallbackErr = os.OpenRoot(t.path) })
	if t.fallbackErr != nil {
		return nil, fileID{}, t.fallbackErr
	}
	f, err := t.fallback.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fileID{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileID{}, err
	}
	id := idOf(fi)
	if !id.isRegular() && !id.isDir() {
		f.Close()
		return nil, fileID{}, &fs.PathError{Op: "open", Path: name, Err: errNotServable}
	}
	return f, id, nil
}

// stat returns the identity of rel, following symbolic links. It is only
// compared with an identity found by open: a changed answer sends the
// caller back to open, which enforces the root.
func (t *tree) stat(rel string) (fileID, error) {
	var st unix.Stat_t
	err := unix.Fstatat(t.fd, relOrDot(rel), &st, 0)
	runtime.KeepAlive(t.dir)
	if err != nil {
		return fileID{}, err
	}
	return idOfStat(&st), nil
}

// readDir lists the directory open as h and closes h.
func readDir(h handle, name string) ([]os.DirEntry, error) {
	var f *os.File
	switch h := h.(type) {
	case *fdHandle:
		f = os.NewFile(uintptr(h.fd), name)
		h.fd = -1
	case *os.File:
		f = h
	default:
		return nil, errors.New("not a directory handle")
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// fdHandle is a file opened by tree.open: a bare descriptor, read with
// pread and sent with sendfile, never registered with the poller.
type fdHandle struct{ fd int }

// ReadAt reads len(p) bytes at off with pread.
func (h *fdHandle) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pread(h.fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &fs.PathError{Op: "pread", Path: "file", Err: err}
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

// Close closes the descriptor.
func (h *fdHandle) Close() error {
	if h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	return err
}

func idOfStat(st *unix.Stat_t) fileID {
	mode := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFREG:
	default:
		mode |= fs.ModeIrregular
	}
	return fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), mode: mode}
}

func idOf(fi fs.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id
}
