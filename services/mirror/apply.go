package mirror

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"syscall"
	"time"

	"github.com/piimage/piimage/services/mirror/wire"
)

// local is a replica's web root. Every operation goes through an os.Root
// (which refuses to leave the tree), and writes check that every folder
// on the way is a real folder, never a symbolic link.
type local struct {
	root  *os.Root
	dir   string
	fsync bool
	log   *slog.Logger
}

// lstat describes the local entry rel.
func (l *local) lstat(rel string) (wire.Item, bool) {
	fi, err := l.root.Lstat(rel)
	if err != nil {
		return wire.Item{}, false
	}
	it, ok, err := itemOf(rel, fi, l.root.Readlink)
	return it, ok && err == nil
}

// ensureParents makes every folder above rel a real folder: missing ones
// are created; a file or link where remote lists a folder is replaced; a
// link that remote lists as a link is refused (writing through it would
// follow it).
func (l *local) ensureParents(rel string, remote map[string]wire.Item) error {
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		if err := l.ensureDirAt(rel[:i], remote); err != nil {
			return err
		}
	}
	return nil
}

func (l *local) ensureDirAt(dir string, remote map[string]wire.Item) error {
	mode := fs.FileMode(0o755)
	r, listed := remote[dir]
	if listed {
		if r.Kind != wire.KindDir {
			return fmt.Errorf("%w: %q would be written through the %s %q", ErrUnsafePath, dir, kindName(r.Kind), dir)
		}
		mode = fileMode(r.Mode)
	}
	fi, err := l.root.Lstat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		if err := l.root.Remove(dir); err != nil {
			return fmt.Errorf("replacing %s by a folder: %w", dir, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if err := l.root.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating folder: %w", err)
	}
	return l.root.Chmod(dir, mode)
}

func kindName(k wire.Kind) string {
	switch k {
	case wire.KindFile:
		return "file"
	case wire.KindDir:
		return "folder"
	case wire.KindSymlink:
		return "symbolic link"
	}
	return "entry"
}

// ensureDir makes rel a folder with it's mode.
func (l *local) ensureDir(it wire.Item, remote map[string]wire.Item) error {
	if err := l.ensureParents(it.Path, remote); err != nil {
		return err
	}
	fi, err := l.root.Lstat(it.Path)
	if err == nil && !fi.IsDir() {
		if err := l.root.Remove(it.Path); err != nil {
			return err
		}
		err = fs.ErrNotExist
	}
	if err != nil {
		if err := l.root.Mkdir(it.Path, fileMode(it.Mode)); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating folder: %w", err)
		}
	}
	if err != nil || wireMode(fi.Mode()) != it.Mode {
		return l.root.Chmod(it.Path, fileMode(it.Mode))
	}
	return nil
}

// ensureSymlink makes rel a symbolic link to it.Target, replacing what
// was there in one rename. The target is copied verbatim; the mirror never
// follows links.
func (l *local) ensureSymlink(it wire.Item, remote map[string]wire.Item) error {
	if cur, ok := l.lstat(it.Path); ok && cur.Kind == wire.KindSymlink && cur.Target == it.Target {
		return nil
	}
	if err := l.ensureParents(it.Path, remote); err != nil {
		return err
	}
	tmp := tempName(it.Path, randTag())
	if err := l.root.Symlink(it.Target, tmp); err != nil {
		return fmt.Errorf("creating link: %w", err)
	}
	if err := l.replace(tmp, it.Path); err != nil {
		l.root.Remove(tmp)
		return err
	}
	return nil
}

// replace renames tmp over rel; a folder at rel is removed first.
func (l *local) replace(tmp, rel string) error {
	if fi, err := l.root.Lstat(rel); err == nil && fi.IsDir() {
		if err := l.root.RemoveAll(rel); err != nil {
			return fmt.Errorf("removing folder %s: %w", rel, err)
		}
	}
	if err := l.root.Rename(tmp, rel); err != nil {
		return fmt.Errorf("renaming into place: %w", err)
	}
	return nil
}

// remove deletes rel and whatever is below it; a missing rel is fine.
func (l *local) remove(rel string) (bool, error) {
	if _, err := l.root.Lstat(rel); err != nil {
		return false, nil
	}
	if err := l.root.RemoveAll(rel); err != nil {
		return false, fmt.Errorf("deleting %s: %w", rel, err)
	}
	return true, nil
}

func randTag() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// openRegular opens rel for reading if it is a regular file.
func (l *local) openRegular(rel string) (*os.File, int64, bool) {
	f, err := l.root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, false
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, false
	}
	return f, fi.Size(), true
}

// incoming is a file being received under a temporary name.
type incoming struct {
	l    *local
	rel  string
	tmp  string
	f    *os.File
	w    *bufio.Writer
	done bool
}

// create starts receiving rel into a new temporary file beside it.
func (l *local) create(rel string) (*incoming, error) {
	tmp := tempName(rel, randTag())
	f, err := l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating temporary file: %w", err)
	}
	return &incoming{l: l, rel: rel, tmp: tmp, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (in *incoming) Write(p []byte) (int, error) { return in.w.Write(p) }

// commit makes the received file visible whole: flush, fsync, mode, mtime,
// rename over rel.
func (in *incoming) commit(mode uint32, mtimeNs int64) error {
	in.done = true
	err := in.w.Flush()
	if err == nil && in.l.fsync {
		err = in.f.Sync()
	}
	if err == nil {
		err = in.f.Chmod(fileMode(mode))
	}
	if cerr := in.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		t := time.Unix(0, mtimeNs)
		err = in.l.root.Chtimes(in.tmp, t, t)
	}
	if err == nil {
		err = in.l.replace(in.tmp, in.rel)
	}
	if err != nil {
		in.l.root.Remove(in.tmp)
		return fmt.Errorf("writing %s: %w", in.rel, err)
	}
	return nil
}

// abort drops the temporary file, or keeps it as rel's partial transfer
// (the basis of the next try) when it holds at least keep bytes.
func (in *incoming) abort(keep int64) {
	if in.done {
		return
	}
	in.done = true
	in.w.Flush()
	fi, err := in.f.Stat()
	in.f.Close()
	if err == nil && keep > 0 && fi.Size() >= keep {
		if in.l.root.Rename(in.tmp, partialName(in.rel)) == nil {
			return
		}
	}
	in.l.root.Remove(in.tmp)
}

// setDirTime restores a folder's mtime after its content changed.
func (l *local) setDirTime(rel string, mtimeNs int64) {
	if fi, err := l.root.Lstat(rel); err == nil && fi.IsDir() && fi.ModTime().UnixNano() != mtimeNs {
		t := time.Unix(0, mtimeNs)
		l.root.Chtimes(rel, t, t)
	}
}

func parentOf(rel string) string {
	d := path.Dir(rel)
	if d == "." {
		return ""
	}
	return d
}
