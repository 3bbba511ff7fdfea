package squashfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// testTime is the ModTime of the test images.
var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// memWriter is an in-memory io.WriterAt that records the furthest byte
// written.
type memWriter struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memWriter) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.buf) {
		m.buf = append(m.buf, make([]byte, end-len(m.buf))...)
	}
	copy(m.buf[off:], p)
	return len(p), nil
}

// discard is an io.WriterAt that drops everything.
type discard struct{}

func (discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// build writes fsys into a temporary image file and returns its path.
func build(t testing.TB, fsys fs.FS, opts Options) string {
	t.Helper()
	var m memWriter
	n, err := Write(&m, fsys, opts)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if int64(len(m.buf)) != n {
		t.Fatalf("Write returned %d but wrote %d bytes", n, len(m.buf))
	}
	if n%4096 != 0 {
		t.Fatalf("size %d is not a multiple of 4096", n)
	}
	img := filepath.Join(t.TempDir(), "root.squashfs")
	if err := os.WriteFile(img, m.buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}

// needTool skips the test when a command is missing.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install squashfs-tools)", name)
	}
	return p
}

// run runs a command with TZ=UTC and returns its standard output; it fails
// the test on a non-zero exit or on anything printed to standard error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("%s %s: %v\nstderr: %s\nstdout: %s", name, strings.Join(args, " "), err, stderr.String(), tail(stdout.String()))
	}
	return stdout.String()
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// lsMode formats a mode as ls -l and unsquashfs -l do.
func lsMode(m fs.FileMode) string {
	b := []byte("-rwxrwxrwx")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	}
	for i := range 9 {
		if m&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(i int, on bool, set, unset byte) {
		if on {
			if b[i] == '-' {
				b[i] = unset
			} else {
				b[i] = set
			}
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}

// entry is what the tests expect to find at one path.
type entry struct {
	mode   fs.FileMode // type and permission bits
	data   []byte      // regular files
	target string      // symlinks
	subdir uint32      // directories: number of subdirectories
}

// expected lists the tree as the image must show it (root mode 0755).
func expected(t testing.TB, fsys fs.FS) map[string]entry {
	t.Helper()
	want := map[string]entry{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{mode: info.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		switch {
		case p == ".":
			e.mode = fs.ModeDir | 0o755
		case d.Type()&fs.ModeSymlink != 0:
			if e.target, err = fs.ReadLink(fsys, p); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if e.data, err = fs.ReadFile(fsys, p); err != nil {
				return err
			}
		}
		if d.IsDir() && p != "." {
			parent := want[filepath.Dir(p)]
			parent.subdir++
			want[filepath.Dir(p)] = parent
		}
		want[p] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walking the input tree: %v", err)
	}
	return want
}

// compareDir checks that the directory dir on disk (an extraction or a
// mount) holds exactly the tree want. With mounted set it also checks link
// counts, owners and timestamps, which unsquashfs extraction does not keep
// for symlinks and which unprivileged extraction cannot set.
func compareDir(t testing.TB, dir string, want map[string]entry, mounted bool) {
	t.Helper()
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		w, ok := want[rel]
		if !ok {
			t.Errorf("%s: in the image but not in the tree", rel)
			return nil
		}
		seen++
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		got := info.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if w.mode&fs.ModeSymlink != 0 {
			got &^= fs.ModePerm // symlink permissions are not meaningful on Linux
			w.mode &^= fs.ModePerm
		}
		if got != w.mode {
			t.Errorf("%s: mode %v, want %v", rel, got, w.mode)
		}
		switch {
		case w.mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if target != w.target {
				t.Errorf("%s: target %q, want %q", rel, target, w.target)
			}
		case w.mode.IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Equal(data, w.data) {
				t.Errorf("%s: contents differ (%d bytes, want %d)", rel, len(data), len(w.data))
			}
		}
		if mounted {
			st := info.Sys().(*syscall.Stat_t)
			if st.Uid != 0 || st.Gid != 0 {
				t.Errorf("%s: owner %d:%d, want 0:0", rel, st.Uid, st.Gid)
			}
			if !info.ModTime().Equal(testTime) {
				t.Errorf("%s: mtime %v, want %v", rel, info.ModTime(), testTime)
			}
			wantLinks := uint64(1)
			if w.mode.IsDir() {
				wantLinks = 2 + uint64(w.subdir)
			}
			if uint64(st.Nlink) != wantLinks {
				t.Errorf("%s: nlink %d, want %d", rel, st.Nlink, wantLinks)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	if seen != len(want) {
		for p := range want {
			if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p))); err != nil {
				t.Errorf("%s: in the tree but not in the image", p)
			}
		}
	}
}

// symlink is a MapFS entry for a symbolic link.
func symlink(target string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
}

func file(data []byte, perm fs.FileMode) *fstest.MapFile {
	return &fstest.MapFile{Data: data, Mode: perm}
}

func dir(perm fs.FileMode) *fstest.MapFile {
	return &fstest.MapFile{Mode: fs.ModeDir | perm}
}

// fmtSize prints a byte count with MiB.
func fmtSize(n int64) string { return fmt.Sprintf("%d bytes (%.2f MiB)", n, float64(n)/(1<<20)) }
