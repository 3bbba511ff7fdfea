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
// on the way is a real folder, never a symbolic link. Folders checked so
// are kept open as Roots of their own (dirs), so that writing a file costs
// the same few system calls as rsync's: create, write, chmod, utimes,
// rename, each relative to its folder.
type local struct {
	root  *os.Root
	dir   string
	fsync bool
	log   *slog.Logger
	dirs  map[string]*os.Root
	// writers are buffers of files no longer written, for the next ones.
	writers []*bufio.Writer
}

// release gives back a file's buffer.
func (in *incoming) release() {
	if in.w != nil && len(in.l.writers) < 16 {
		in.w.Reset(nil)
		in.l.writers = append(in.l.writers, in.w)
	}
	in.w = nil
}

// maxOpenDirs bounds the folders kept open.
const maxOpenDirs = 1024

// dirRoot returns the folder dir (checked by ensureParents) as a Root.
func (l *local) dirRoot(dir string) (*os.Root, error) {
	if dir == "" {
		return l.root, nil
	}
	if r, ok := l.dirs[dir]; ok {
		return r, nil
	}
	r, err := l.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if l.dirs == nil || len(l.dirs) >= maxOpenDirs {
		// Forget them all without closing: a file being created or
		// renamed may still use one; the garbage collector closes them.
		l.dirs = map[string]*os.Root{}
	}
	l.dirs[dir] = r
	return r, nil
}

// forgetDirs closes the open folders at or below rel, which is about to
// be removed or replaced.
func (l *local) forgetDirs(rel string) {
	for d, r := range l.dirs {
		if isUnder(d, rel) {
			r.Close()
			delete(l.dirs, d)
		}
	}
}

func (l *local) closeDirs() {
	for _, r := range l.dirs {
		r.Close()
	}
	l.dirs = nil
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
	if p := parentOf(rel); p == "" {
		return nil
	} else if _, ok := l.dirs[p]; ok {
		if r, listed := remote[p]; !listed || r.Kind == wire.KindDir {
			return nil // checked when it was opened
		}
	}
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
		l.forgetDirs(dir)
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
		l.forgetDirs(it.Path)
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
	err := l.root.Rename(tmp, rel)
	if err != nil {
		if fi, lerr := l.root.Lstat(rel); lerr == nil && fi.IsDir() {
			l.forgetDirs(rel)
			if err := l.root.RemoveAll(rel); err != nil {
				return fmt.Errorf("removing folder %s: %w", rel, err)
			}
			err = l.root.Rename(tmp, rel)
		}
	}
	if err != nil {
		return fmt.Errorf("renaming into place: %w", err)
	}
	return nil
}

// remove deletes rel and whatever is below it; a missing rel is fine.
func (l *local) remove(rel string) (bool, error) {
	if _, err := l.root.Lstat(rel); err != nil {
		return false, nil
	}
	l.forgetDirs(rel)
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

// incoming is a file being received under a temporary name in its
// folder.
type incoming struct {
	l        *local
	rel      string
	dr       *os.Root // the folder
	tmp      string   // base names in dr
	base     string
	f        *os.File
	w        *bufio.Writer
	finished bool
	done     bool
}

// precreate is a temporary file created ahead, on another goroutine,
// while the data of earlier files is still arriving: creating a file is
// the slowest system call of a copy.
type precreate struct {
	done      chan struct{}
	dr        *os.Root
	dir       string
	tmp, base string
	f         *os.File
	err       error
}

// prepare checks rel's folders and names its temporary file; open
// (on any goroutine) then creates it.
func (l *local) prepare(rel string, remote map[string]wire.Item) (*precreate, error) {
	if err := l.ensureParents(rel, remote); err != nil {
		return nil, err
	}
	dir := parentOf(rel)
	dr, err := l.dirRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening folder of %s: %w", rel, err)
	}
	base := path.Base(rel)
	return &precreate{done: make(chan struct{}), dr: dr, dir: dir, base: base, tmp: tempName(base, randTag())}, nil
}

func (pc *precreate) open() {
	pc.f, pc.err = pc.dr.OpenFile(pc.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if pc.err != nil {
		pc.err = fmt.Errorf("creating temporary file: %w", pc.err)
	}
	close(pc.done)
}

// drop removes a temporary file that will not be used.
func (pc *precreate) drop() {
	<-pc.done
	if pc.f != nil {
		pc.f.Close()
		pc.dr.Remove(pc.tmp)
	}
}

// create starts receiving rel into a new temporary file beside it; its
// folders must have been checked with ensureParents.
func (l *local) create(rel string) (*incoming, error) {
	pc, err := l.prepare(rel, nil)
	if err != nil {
		return nil, err
	}
	pc.open()
	return l.receive(rel, pc)
}

// receive starts receiving rel into the file pc created.
func (l *local) receive(rel string, pc *precreate) (*incoming, error) {
	<-pc.done
	if pc.err != nil {
		return nil, pc.err
	}
	var w *bufio.Writer
	if n := len(l.writers); n > 0 {
		w, l.writers = l.writers[n-1], l.writers[:n-1]
		w.Reset(pc.f)
	} else {
		w = bufio.NewWriterSize(pc.f, 256<<10)
	}
	return &incoming{l: l, rel: rel, dr: pc.dr, tmp: pc.tmp, base: pc.base, f: pc.f, w: w}, nil
}

// current reports whether pc's folder is still the one at its path (it
// was not removed or replaced since).
func (l *local) current(pc *precreate) bool {
	if pc.dir == "" {
		return true
	}
	return l.dirs[pc.dir] == pc.dr
}

func (in *incoming) Write(p []byte) (int, error) { return in.w.Write(p) }

// finish completes the temporary file: flush, (fsync when syncfs is not
// available), mode, close, mtime. It is not visible yet: see commit.
func (in *incoming) finish(mode uint32, mtimeNs int64) error {
	in.finished = true
	err := in.w.Flush()
	in.release()
	if err == nil && in.l.fsync && !haveSyncfs {
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
		err = in.dr.Chtimes(in.tmp, t, t)
	}
	if err != nil {
		in.done = true
		in.dr.Remove(in.tmp)
		return fmt.Errorf("writing %s: %w", in.rel, err)
	}
	return nil
}

// commit renames the finished file over rel: readers see the old file or
// the new one, whole.
func (in *incoming) commit() error {
	in.done = true
	err := in.dr.Rename(in.tmp, in.base)
	if err != nil {
		// Most likely a folder stands at rel.
		err = in.l.replace(parentPrefix(in.rel)+in.tmp, in.rel)
	}
	if err != nil {
		in.dr.Remove(in.tmp)
		return fmt.Errorf("writing %s: %w", in.rel, err)
	}
	return nil
}

// parentPrefix is rel's folder with a trailing slash, or "".
func parentPrefix(rel string) string {
	if p := parentOf(rel); p != "" {
		return p + "/"
	}
	return ""
}

// abort drops the temporary file, or keeps it as rel's partial transfer
// (the basis of the next try) when it holds at least keep bytes.
func (in *incoming) abort(keep int64) {
	if in.done {
		return
	}
	in.done = true
	if !in.finished {
		in.w.Flush()
		in.release()
		in.f.Close()
	}
	if fi, err := in.dr.Lstat(in.tmp); err == nil && keep > 0 && fi.Size() >= keep {
		if in.dr.Rename(in.tmp, partialName(in.base)) == nil {
			return
		}
	}
	in.dr.Remove(in.tmp)
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
