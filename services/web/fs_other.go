//go:build !linux

package web

import (
	"fmt"
	"io/fs"
	"os"
)

// tree is an open web root. Files are opened through os.Root, which
// refuses paths and symbolic links leading out of the root (unless
// symlinksOutside is set, which opens by plain path).
type tree struct {
	path            string
	root            *os.Root
	symlinksOutside bool
	id              fileID
}

// openTree opens the web root at path.
func openTree(path string, symlinksOutside bool) (*tree, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening web root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("opening web root: %s is not a directory", path)
	}
	r, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("opening web root: %w", err)
	}
	return &tree{path: path, root: r, symlinksOutside: symlinksOutside, id: idOf(fi)}, nil
}

func (t *tree) close() { t.root.Close() }

func (t *tree) open(rel string) (handle, fileID, error) {
	var f *os.File
	var err error
	if t.symlinksOutside {
		f, err = os.Open(t.path + "/" + rel)
	} else {
		f, err = t.root.Open(relOrDot(rel))
	}
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
		return nil, fileID{}, &fs.PathError{Op: "open", Path: rel, Err: errNotServable}
	}
	return f, id, nil
}

func (t *tree) stat(rel string) (fileID, error) {
	fi, err := t.root.Stat(relOrDot(rel))
	if err != nil {
		return fileID{}, err
	}
	return idOf(fi), nil
}

func readDir(h handle, name string) ([]os.DirEntry, error) {
	f := h.(*os.File)
	defer f.Close()
	return f.ReadDir(-1)
}

func idOf(fi fs.FileInfo) fileID {
	return fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
}
