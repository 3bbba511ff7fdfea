package ext4

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// testTime is the ModTime of every test image.
var testTime = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

func testOptions() Options {
	return Options{
		Label:    "data",
		UUID:     [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef},
		HashSeed: [16]byte{0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f},
		ModTime:  testTime,
	}
}

// hasTool reports whether a program is installed.
func hasTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// needTool skips the test when a program is missing.
func needTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed (apt-get install e2fsprogs)", n)
		}
	}
}

// buildImage writes fsys into a fresh sparse file of size bytes.
func buildImage(t testing.TB, size int64, fsys fs.FS, o Options) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "data.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := Write(boundedWriter{t, f, size}, size, fsys, o); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return p
}

// boundedWriter fails the test on any write outside [0, size); with no
// file it discards the bytes.
type boundedWriter struct {
	t    testing.TB
	f    *os.File
	size int64
}

func (b boundedWriter) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > b.size {
		b.t.Errorf("write of %d bytes at %d is outside [0,%d)", len(p), off, b.size)
	}
	if b.f == nil {
		return len(p), nil
	}
	return b.f.WriteAt(p, off)
}

// fsck runs e2fsck -fn and fails the test unless it exits 0.
func fsck(t testing.TB, img string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
}

// debugfs runs one debugfs request.
func debugfs(t testing.TB, img, req string) string {
	t.Helper()
	cmd := exec.Command("debugfs", "-R", req, img)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs -R %q: %v\n%s", req, err, errb.String())
	}
	return out.String()
}

// rdumpPerm is what debugfs rdump restores of a mode: only the rwx bits
// (its mode_xlate table), and only when run as root.
func rdumpPerm() fs.FileMode {
	if os.Geteuid() != 0 {
		return 0
	}
	return fs.ModePerm
}

// allPerm is every permission bit the kernel keeps.
const allPerm = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// rdump extracts the whole filesystem with debugfs into a new directory.
func rdump(t testing.TB, img string) string {
	t.Helper()
	dir := t.TempDir()
	debugfs(t, img, "rdump / "+dir)
	return dir
}

// compareTree checks that every entry of want exists in dir with the same
// type, permissions (selected by permMask), content and symlink target, and
// that dir holds nothing else but lost+found (and the names in extra).
func compareTree(t testing.TB, want fs.FS, dir string, permMask fs.FileMode, extra ...string) {
	t.Helper()
	seen := map[string]bool{".": true, "lost+found": true}
	for _, e := range extra {
		seen[e] = true
	}
	err := fs.WalkDir(want, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		seen[p] = true
		wi, err := d.Info()
		if err != nil {
			return err
		}
		got := filepath.Join(dir, filepath.FromSlash(p))
		gi, err := os.Lstat(got)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		if gi.Mode().Type() != wi.Mode().Type() {
			t.Errorf("%s: type %v, want %v", p, gi.Mode().Type(), wi.Mode().Type())
			return nil
		}
		if p != "." && wi.Mode().Type() != fs.ModeSymlink {
			if g, w := gi.Mode()&permMask, wi.Mode()&permMask; g != w {
				t.Errorf("%s: mode %v, want %v", p, g, w)
			}
		}
		switch {
		case wi.Mode().IsRegular():
			wb, err := fs.ReadFile(want, p)
			if err != nil {
				return err
			}
			gb, err := os.ReadFile(got)
			if err != nil {
				t.Errorf("%s: %v", p, err)
			} else if !bytes.Equal(gb, wb) {
				t.Errorf("%s: content differs (%d bytes, want %d)", p, len(gb), len(wb))
			}
		case wi.Mode()&fs.ModeSymlink != 0:
			wt, err := fs.ReadLink(want, p)
			if err != nil {
				return err
			}
			gt, err := os.Readlink(got)
			if err != nil || gt != wt {
				t.Errorf("%s: symlink target %q (%v), want %q", p, gt, err, wt)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if !seen[rel] && !strings.HasPrefix(rel, "lost+found/") {
			t.Errorf("extra entry %s in the filesystem", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// smallTree is a tree with every kind of entry.
func smallTree() fstest.MapFS {
	return fstest.MapFS{
		"hello.txt":          {Data: []byte("hello, world\n"), Mode: 0o644},
		"empty":              {Mode: 0o600},
		"bin/tool":           {Data: bytes.Repeat([]byte("x"), 10000), Mode: fs.ModeSetuid | fs.ModeSetgid | 0o755},
		"etc":                {Mode: fs.ModeDir | 0o750},
		"etc/keys/node.key":  {Data: []byte("secret"), Mode: 0o400},
		"sticky":             {Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		"shared":             {Mode: fs.ModeDir | fs.ModeSetgid | 0o775},
		"link-fast":          {Data: []byte("hello.txt"), Mode: fs.ModeSymlink | 0o777},
		"link-slow":          {Data: []byte(strings.Repeat("d/", 50) + "target"), Mode: fs.ModeSymlink | 0o777},
		"web/index.html":     {Data: []byte("<h1>hi</h1>"), Mode: 0o644},
		"web/assets/a.css":   {Data: []byte("body{}"), Mode: 0o644},
		"web/assets/deep/x":  {Data: bytes.Repeat([]byte{0, 1, 2, 3}, 3000), Mode: 0o644},
		"web/assets/deep/y0": {Data: make([]byte, 9000), Mode: 0o644},
	}
}
