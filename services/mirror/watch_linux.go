package mirror

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watcher reports changed paths under a root with inotify. It watches
// every folder (new ones as they appear); each read of the inotify queue
// becomes one slice of changed paths, relative to the root. When the
// kernel's queue overflows, Overflow fires and the caller must scan.
type watcher struct {
	f    *os.File
	fd   int
	root string
	ex   *excluder
	log  *slog.Logger

	mu     sync.Mutex
	wds    map[int32]string
	byPath map[string]int32

	events   chan []change
	overflow chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
}

const watchMask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_ATTRIB |
	unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF |
	unix.IN_MOVE_SELF | unix.IN_DONT_FOLLOW | unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

func newWatcher(root string, ex *excluder, log *slog.Logger) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	w := &watcher{
		f: os.NewFile(uintptr(fd), "inotify"), fd: fd, root: filepath.Clean(root), ex: ex, log: log,
		wds: map[int32]string{}, byPath: map[string]int32{},
		events: make(chan []change, 16), overflow: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if err := w.addTree(""); err != nil {
		w.f.Close()
		return nil, err
	}
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// Events delivers changed paths.
func (w *watcher) Events() <-chan []change { return w.events }

// Overflow fires when changes were lost.
func (w *watcher) Overflow() <-chan struct{} { return w.overflow }

// Close stops watching.
func (w *watcher) Close() error {
	close(w.done)
	err := w.f.Close()
	w.wg.Wait()
	return err
}

// addTree watches the folder rel and every folder below it.
func (w *watcher) addTree(rel string) error {
	dir := filepath.Join(w.root, filepath.FromSlash(rel)) + string(filepath.Separator)
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && rel == "" {
				return err
			}
			return nil // vanished or unreadable: the scan will tell
		}
		if !d.IsDir() {
			return nil
		}
		sub := rel
		if p != dir {
			sub = filepath.ToSlash(p[len(w.root)+1:])
			if isOwnFile(d.Name()) || w.ex.match(sub, true) {
				return filepath.SkipDir
			}
		}
		wd, err := unix.InotifyAddWatch(w.fd, p, watchMask)
		if err != nil {
			if errors.Is(err, unix.ENOSPC) {
				w.log.Warn("mirror: out of inotify watches (fs.inotify.max_user_watches); the periodic scan covers the rest")
				return filepath.SkipAll
			}
			return nil
		}
		w.mu.Lock()
		w.wds[int32(wd)] = sub
		w.byPath[sub] = int32(wd)
		w.mu.Unlock()
		return nil
	})
}

// forget stops watching rel and the folders below it (moved away).
func (w *watcher) forget(rel string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, wd := range w.byPath {
		if isUnder(p, rel) {
			unix.InotifyRmWatch(w.fd, uint32(wd))
			delete(w.byPath, p)
			delete(w.wds, wd)
		}
	}
}

func (w *watcher) loop() {
	defer w.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			select {
			case <-w.done:
			default:
				w.log.Warn("mirror: reading inotify", "err", err)
			}
			return
		}
		paths := w.parse(buf[:n])
		if len(paths) == 0 {
			continue
		}
		select {
		case w.events <- paths:
		case <-w.done:
			return
		}
	}
}

// parse turns a read of inotify events into changed paths. A file whose
// last event is a write (IN_MODIFY) is marked as being written.
func (w *watcher) parse(b []byte) []change {
	var out []change
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			break
		}
		name := string(trimNUL(b[unix.SizeofInotifyEvent:end]))
		b = b[end:]
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			select {
			case w.overflow <- struct{}{}:
			default:
			}
			continue
		}
		w.mu.Lock()
		dir, ok := w.wds[ev.Wd]
		if ev.Mask&unix.IN_IGNORED != 0 {
			delete(w.wds, ev.Wd)
			if w.byPath[dir] == ev.Wd {
				delete(w.byPath, dir)
			}
		}
		w.mu.Unlock()
		if !ok {
			continue
		}
		if name == "" {
			if dir != "" {
				out = append(out, change{path: dir}) // the folder itself changed
			}
			continue
		}
		if isOwnFile(name) {
			continue
		}
		rel := path.Join(dir, name)
		if ev.Mask&unix.IN_ISDIR != 0 {
			if ev.Mask&unix.IN_MOVED_FROM != 0 {
				w.forget(rel)
			}
			if ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
				w.addTree(rel)
			}
		}
		out = append(out, change{path: rel, writing: ev.Mask&^unix.IN_ISDIR == unix.IN_MODIFY})
	}
	return out
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
