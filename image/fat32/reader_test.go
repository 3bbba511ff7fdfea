package fat32

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// writeSparse writes fsys into a new sparse in-memory disk of size bytes.
func writeSparse(t testing.TB, size int64, fsys fs.FS) *sparseDisk {
	t.Helper()
	d := newSparseDisk(size)
	if err := Write(d, size, fsys, Options{ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReaderFSTest runs the standard library's fs.FS conformance checks.
func TestReaderFSTest(t *testing.T) {
	tree := smallTree()
	d := writeSparse(t, 64*mib, tree)
	fsys, err := Open(d, d.size)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for p := range tree {
		files = append(files, p)
	}
	if err := fstest.TestFS(fsys, files...); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, tree, fsys)
}

// TestReaderLookup checks case-insensitive lookup by long name and alias.
func TestReaderLookup(t *testing.T) {
	d := writeSparse(t, 64*mib, piTree())
	fsys, err := Open(d, d.size)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		name string // Stat().Name(), "" when the lookup must fail
	}{
		{"config.txt", "config.txt"},
		{"CONFIG.TXT", "config.txt"},
		{"Config.Txt", "config.txt"},
		{"SLOT-A/CMDLINE.TXT", "cmdline.txt"},
		{"slot-a/overlays/OVERLAY-003-DISABLE-BT.DTBO", "overlay-003-Disable-BT.dtbo"},
		{"slot-a/overlays/OVERLA~1.DTB", "overlay-000-i2c.dtbo"},
		{"slot-b", "slot-b"},
		{".", "."},
		{"missing", ""},
		{"config.txt/x", ""},
		{"slot-a/", ""},
		{"/config.txt", ""},
	}
	for _, tt := range tests {
		st, err := fsys.Stat(tt.path)
		switch {
		case tt.name == "" && err == nil:
			t.Errorf("Stat(%q) found %q, want an error", tt.path, st.Name())
		case tt.name != "" && err != nil:
			t.Errorf("Stat(%q): %v", tt.path, err)
		case tt.name != "" && st.Name() != tt.name:
			t.Errorf("Stat(%q).Name() = %q, want %q", tt.path, st.Name(), tt.name)
		}
	}
	if _, err := fsys.Open("nope/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(nope/x) = %v, want ErrNotExist", err)
	}
	if _, err := fsys.ReadFile("slot-a"); err == nil {
		t.Error("ReadFile of a directory: no error")
	}
	if _, err := fsys.ReadDir("config.txt"); err == nil {
		t.Error("ReadDir of a file: no error")
	}
}

// TestReaderSeek reads a multi-cluster file at offsets across clusters.
func TestReaderSeek(t *testing.T) {
	data := content("seek", 10_000)
	d := writeSparse(t, 64*mib, fstest.MapFS{"f": {Data: data}})
	fsys, err := Open(d, d.size)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	rs := f.(io.ReadSeeker)
	for _, off := range []int64{0, 1, 511, 512, 513, 5000, 9999} {
		if _, err := rs.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rs)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(data[off:]) {
			t.Errorf("from %d: read %d bytes, want %d", off, len(got), len(data)-int(off))
		}
	}
	if n, err := f.(io.ReaderAt).ReadAt(make([]byte, 10), 9995); n != 5 || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v; want 5, EOF", n, err)
	}
}

// TestReaderNTCase reads short names carrying the NT lower-case flags, as
// Windows writes them.
func TestReaderNTCase(t *testing.T) {
	d := writeSparse(t, 64*mib, fstest.MapFS{"README.MD": {Data: []byte("r")}, "KERNEL.IMG": {Data: []byte("k")}})
	fsys, err := Open(d, d.size)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := fsys.dir(fsys.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		flag := byte(ntLowerBase | ntLowerExt)
		if e.name == "KERNEL.IMG" {
			flag = ntLowerBase
		}
		if _, err := d.WriteAt([]byte{flag}, e.off+12); err != nil {
			t.Fatal(err)
		}
	}
	fsys, err = Open(d, d.size)
	if err != nil {
		t.Fatal(err)
	}
	es, err := fsys.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	if got := dirNames(es); len(got) != 2 || got[0] != "f:kernel.IMG" || got[1] != "f:readme.md" {
		t.Errorf("names %q, want kernel.IMG and readme.md", got)
	}
}

// TestReaderMkfs reads a volume made by mkfs.fat and filled by mcopy, so
// the reader is checked against an independent writer.
func TestReaderMkfs(t *testing.T) {
	mkfs := needTool(t, "mkfs.fat")
	needTool(t, "mcopy")
	tree := smallTree()
	src := t.TempDir()
	for p, f := range tree {
		full := filepath.Join(src, filepath.FromSlash(p))
		if f.Mode.IsDir() {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "mkfs.img")
	if out, err := exec.Command(mkfs, "-F", "32", "-C", img, "65536").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.fat: %v\n%s", err, out)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-s", "-i", img}
	for _, e := range ents {
		args = append(args, filepath.Join(src, e.Name()))
	}
	mtools(t, "mcopy", append(args, "::/")...)
	// mcopy writes "." entries and deleted entries differently from us;
	// delete a file too, so the reader skips 0xE5 entries.
	mtools(t, "mcopy", "-i", img, filepath.Join(src, "config.txt"), "::/deleted-later.txt")
	mtools(t, "mdel", "-i", img, "::/deleted-later.txt")
	compareTrees(t, tree, openFile(t, img))
}
