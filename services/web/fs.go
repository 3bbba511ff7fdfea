package web

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"syscall"
)

// fileID identifies one version of a file: when any field changes, cached
// headers and contents of the file are stale.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64 // Unix nanoseconds
	mode     fs.FileMode
}

func (id fileID) isDir() bool     { return id.mode.IsDir() }
func (id fileID) isRegular() bool { return id.mode.IsRegular() }

// handle is a file opened from a tree: regular files are read with ReadAt
// (and sent with sendfile on Linux), directories are listed.
type handle interface {
	io.ReaderAt
	io.Closer
}

// errNotServable is the error for files that are neither regular files nor
// directories (devices, FIFOs, sockets): they answer 404.
var errNotServable = errors.New("not a regular file or directory")

// statusOf maps an error of opening or reading a file to an HTTP status.
// It never shows the error's text to the client.
func statusOf(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, errNotServable),
		errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ELOOP),
		errors.Is(err, syscall.EXDEV), errors.Is(err, syscall.ENAMETOOLONG),
		isEscape(err):
		return http.StatusNotFound
	case errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// isEscape reports whether err is os.Root's refusal of a path leaving the
// root; the os package has no exported error for it.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// relOrDot turns a tree-relative path into one the open calls accept.
func relOrDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
