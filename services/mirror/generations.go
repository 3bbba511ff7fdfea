package mirror

// Whole-tree switches (Config.AtomicTree): the web root is a symbolic
// link to one generation of the tree, a sibling folder <root>.gen-N. The
// replica applies changes to a working copy, <root>.stage, and once a
// generation from the primary is wholly applied it builds the next
// generation from the working copy (hard links, so unchanged files cost
// no space; a copy where the file system has none) and renames a new link
// over the root. A reader that resolves the root once (the web server
// holds the root open and notices its replacement within a second) sees
// the whole old tree or the whole new one. Retired generations are
// removed after Config.GenerationGrace.
//
// The working copy is never changed in place: every file lands by a
// rename (see incoming.commit) and a mode change alone is fetched again,
// so a file linked into a published generation never changes under it.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// generations manages the generations of an atomically switched root.
type generations struct {
	root   string // the web root: a symbolic link to the current generation
	parent string
	base   string
	stage  string // the working copy the syncer writes
	grace  time.Duration
	ex     *excluder
	log    *slog.Logger

	mu      sync.Mutex
	seq     uint64
	current string               // base name of the current generation
	retired map[string]time.Time // generations replaced, and when
}

func newGenerations(root string, grace time.Duration, ex *excluder, log *slog.Logger) *generations {
	root = filepath.Clean(root)
	parent, base := filepath.Split(root)
	return &generations{root: root, parent: filepath.Clean(parent), base: base,
		stage: root + ".stage", grace: grace, ex: ex, log: log, retired: map[string]time.Time{}}
}

func (g *generations) genPrefix() string { return g.base + ".gen-" }

// setup makes the root a link to a generation: a missing root gets an
// empty one; a real folder becomes the first generation (switched in one
// rename exchange). It then makes sure the working copy exists.
func (g *generations) setup() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := os.MkdirAll(g.parent, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", g.parent, err)
	}
	fi, err := os.Lstat(g.root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		name := g.nextName()
		if err := os.Mkdir(filepath.Join(g.parent, name), 0o755); err != nil {
			return fmt.Errorf("creating the first generation: %w", err)
		}
		if err := g.switchTo(name); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("examining the web root: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(g.root)
		if err != nil {
			return fmt.Errorf("reading the web root link: %w", err)
		}
		g.current = target
		g.noteSeq(target)
		if st, err := os.Stat(g.root); err != nil || !st.IsDir() {
			return fmt.Errorf("the web root %s links to %s, which is not a folder; remove the link to start afresh", g.root, target)
		}
	case fi.IsDir():
		name := g.nextName()
		if err := cloneTree(g.root, filepath.Join(g.parent, name), nil); err != nil {
			return fmt.Errorf("copying the web root into its first generation: %w", err)
		}
		if err := g.convert(name); err != nil {
			return err
		}
	default:
		return fmt.Errorf("the web root %s is neither a folder nor a link", g.root)
	}
	if st, err := os.Lstat(g.stage); err != nil || !st.IsDir() {
		os.RemoveAll(g.stage)
		tmp := g.stage + ".tmp"
		os.RemoveAll(tmp)
		if err := cloneTree(filepath.Join(g.parent, g.current), tmp, nil); err != nil {
			return fmt.Errorf("creating the working copy: %w", err)
		}
		if err := os.Rename(tmp, g.stage); err != nil {
			return fmt.Errorf("creating the working copy: %w", err)
		}
	}
	g.gcLocked(time.Now())
	return nil
}

// noteSeq raises seq past a generation's number.
func (g *generations) noteSeq(name string) {
	if n, err := strconv.ParseUint(strings.TrimPrefix(name, g.genPrefix()), 10, 64); err == nil && strings.HasPrefix(name, g.genPrefix()) && n > g.seq {
		g.seq = n
	}
}

// nextName returns the name of a new generation, one not taken.
func (g *generations) nextName() string {
	if ents, err := os.ReadDir(g.parent); err == nil {
		for _, e := range ents {
			g.noteSeq(e.Name())
		}
	}
	g.seq++
	return g.genPrefix() + strconv.FormatUint(g.seq, 10)
}

// switchTo points the root at generation name in one rename.
func (g *generations) switchTo(name string) error {
	tmp := filepath.Join(g.parent, "."+g.base+".link-"+randTag())
	if err := os.Symlink(name, tmp); err != nil {
		return fmt.Errorf("creating the web root link: %w", err)
	}
	if err := os.Rename(tmp, g.root); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("switching the web root to %s: %w", name, err)
	}
	if g.current != "" && g.current != name {
		g.retired[g.current] = time.Now()
	}
	g.current = name
	return nil
}

// convert replaces the real folder at the root by a link to generation
// name in one exchange; the old folder is kept as a retired generation.
func (g *generations) convert(name string) error {
	tmp := filepath.Join(g.parent, "."+g.base+".link-"+randTag())
	if err := os.Symlink(name, tmp); err != nil {
		return fmt.Errorf("creating the web root link: %w", err)
	}
	if err := exchange(tmp, g.root); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replacing the web root folder by a link: %w", err)
	}
	old := g.genPrefix() + "0-" + randTag()
	if err := os.Rename(tmp, filepath.Join(g.parent, old)); err != nil {
		return fmt.Errorf("keeping the old web root: %w", err)
	}
	g.retired[old] = time.Now()
	g.current = name
	g.log.Info("mirror: the web root is now a link to whole-tree generations", "root", g.root, "generation", name)
	return nil
}

// publish builds the next generation from the working copy, carrying
// over the excluded paths of the current one (they are the node's own),
// and switches the root to it.
func (g *generations) publish(sync func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	name := g.nextName()
	dst := filepath.Join(g.parent, name)
	os.RemoveAll(dst)
	skip := func(rel string, d fs.DirEntry) bool {
		return isOwnFile(d.Name()) || g.ex.match(rel, d.IsDir())
	}
	if err := cloneTree(g.stage, dst, skip); err != nil {
		os.RemoveAll(dst)
		return fmt.Errorf("building generation %s: %w", name, err)
	}
	if err := g.carryExcluded(filepath.Join(g.parent, g.current), dst); err != nil {
		os.RemoveAll(dst)
		return fmt.Errorf("building generation %s: %w", name, err)
	}
	if sync != nil {
		if err := sync(); err != nil {
			os.RemoveAll(dst)
			return fmt.Errorf("syncing generation %s: %w", name, err)
		}
	}
	if err := g.switchTo(name); err != nil {
		os.RemoveAll(dst)
		return err
	}
	g.gcLocked(time.Now())
	return nil
}

// carryExcluded links the excluded paths of the generation cur into dst,
// where their folder still exists.
func (g *generations) carryExcluded(cur, dst string) error {
	if g.ex == nil || len(g.ex.pats) == 0 {
		return nil
	}
	return filepath.WalkDir(cur, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == cur {
			return nil
		}
		rel := filepath.ToSlash(p[len(cur)+1:])
		if !g.ex.match(rel, d.IsDir()) {
			return nil
		}
		if _, err := os.Lstat(filepath.Dir(filepath.Join(dst, rel))); err != nil {
			return skip(d)
		}
		to := filepath.Join(dst, filepath.FromSlash(rel))
		os.RemoveAll(to)
		fi, err := d.Info()
		switch {
		case err != nil:
			return nil
		case fi.IsDir():
			err = cloneTree(p, to, nil)
		case fi.Mode()&fs.ModeSymlink != 0:
			var target string
			if target, err = os.Readlink(p); err == nil {
				err = os.Symlink(target, to)
			}
		case fi.Mode().IsRegular():
			if os.Link(p, to) != nil {
				err = copyFile(p, to, fi)
			}
		}
		if err != nil {
			return err
		}
		return skip(d)
	})
}

// gc removes the generations retired more than grace ago; ones found on
// disk and not known are retired now.
func (g *generations) gc(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gcLocked(now)
}

func (g *generations) gcLocked(now time.Time) {
	ents, err := os.ReadDir(g.parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, g.genPrefix()) || name == g.current {
			continue
		}
		at, ok := g.retired[name]
		if !ok {
			g.retired[name] = now
			continue
		}
		if now.Sub(at) >= g.grace {
			if err := os.RemoveAll(filepath.Join(g.parent, name)); err != nil {
				g.log.Warn("mirror: removing a retired generation", "err", err)
				continue
			}
			delete(g.retired, name)
		}
	}
}

// cloneTree makes dst a copy of the folder src: folders are created with
// their modes and mtimes, files hard linked (copied where links fail),
// symbolic links copied verbatim. skip, when not nil, leaves entries out.
func cloneTree(src, dst string, skipEntry func(rel string, d fs.DirEntry) bool) error {
	src = filepath.Clean(src)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	err := filepath.WalkDir(src+string(filepath.Separator), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel := ""
		if len(p) > len(src)+1 {
			rel = filepath.ToSlash(p[len(src)+1:])
		}
		if rel != "" && skipEntry != nil && skipEntry(rel, d) {
			return skip(d)
		}
		to := filepath.Join(dst, filepath.FromSlash(rel))
		fi, err := d.Info()
		if rel == "" {
			fi, err = os.Stat(src)
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.Mkdir(to, fi.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(to, fi.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{to, fi.ModTime()})
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case fi.Mode().IsRegular():
			if os.Link(p, to) == nil {
				return nil
			}
			return copyFile(p, to, fi)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chtimes(dirs[i].path, dirs[i].t, dirs[i].t)
	}
	return nil
}

// copyFile copies a regular file with its mode and mtime.
func copyFile(src, dst string, fi fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	}
	return err
}
