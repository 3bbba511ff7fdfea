package cpio

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var testTime = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC) // 0x69f3ed00

func tinyTree() fstest.MapFS {
	return fstest.MapFS{
		"dev":         {Mode: fs.ModeDir | 0o755},
		"dev/console": {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Sys: Device{Major: 5, Minor: 1}},
		"init":        {Data: []byte("#!x\n\n"), Mode: 0o755},
		"sbin":        {Data: []byte("/init"), Mode: fs.ModeSymlink | 0o777},
	}
}

// hdr spells out one newc header: ino, mode, uid, gid, nlink, mtime,
// filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check.
func hdr(ino, mode, nlink, size, rmaj, rmin uint32, name string) string {
	s := Magic
	for _, v := range []uint32{ino, mode, 0, 0, nlink, 0x69f3ed00, size, 0, 0, rmaj, rmin, uint32(len(name) + 1), 0} {
		s += fmt.Sprintf("%08x", v)
	}
	s += name + "\x00"
	for len(s)%4 != 0 {
		s += "\x00"
	}
	return s
}

// TestGolden pins the exact bytes of a small archive: a folder, a device
// node, a 5-byte file (padded with 3 zeros) and a symlink (5 bytes of
// target, padded), then the trailer.
func TestGolden(t *testing.T) {
	want := hdr(1, 0o40755, 2, 0, 0, 0, "dev") +
		hdr(2, 0o20600, 1, 0, 5, 1, "dev/console") +
		hdr(3, 0o100755, 1, 5, 0, 0, "init") + "#!x\n\n\x00\x00\x00" +
		hdr(4, 0o120777, 1, 5, 0, 0, "sbin") + "/init\x00\x00\x00" +
		hdr(0, 0, 1, 0, 0, 0, "TRAILER!!!")
	// The first header by hand, to check hdr itself: 110 bytes, then
	// "dev\0" (110+4 = 114), padded to 116.
	first := "070701" + "00000001" + "000041ed" + "00000000" + "00000000" + "00000002" + "69f3ed00" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "00000004" + "00000000" + "dev\x00\x00\x00"
	if !strings.HasPrefix(want, first) {
		t.Fatalf("test helper hdr is wrong:\n%q\n%q", want[:len(first)], first)
	}
	var buf bytes.Buffer
	n, err := WriteFS(&buf, tinyTree(), Options{ModTime: testTime})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteFS returned %d, wrote %d bytes", n, buf.Len())
	}
	if got := buf.String(); got != want {
		t.Errorf("archive differs:\n got %q\nwant %q", got, want)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
}

func TestDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	tree := sampleTree()
	if _, err := WriteFS(&a, tree, Options{ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFS(&b, tree, Options{ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same tree differ")
	}
}

func TestWriterRefusesMisuse(t *testing.T) {
	tests := []struct {
		name string
		do   func(w *Writer) error
	}{
		{"short entry", func(w *Writer) error {
			w.WriteHeader(&Header{Name: "a", Size: 3})
			w.Write([]byte("ab"))
			return w.Close()
		}},
		{"long entry", func(w *Writer) error {
			w.WriteHeader(&Header{Name: "a", Size: 1})
			_, err := w.Write([]byte("ab"))
			return err
		}},
		{"escaping name", func(w *Writer) error { return w.WriteHeader(&Header{Name: "../etc/passwd"}) }},
		{"trailer name", func(w *Writer) error { return w.WriteHeader(&Header{Name: "TRAILER!!!"}) }},
		{"empty name", func(w *Writer) error { return w.WriteHeader(&Header{Name: ""}) }},
		{"irregular", func(w *Writer) error { return w.WriteHeader(&Header{Name: "x", Mode: fs.ModeIrregular}) }},
		{"huge", func(w *Writer) error { return w.WriteHeader(&Header{Name: "x", Size: 1 << 32}) }},
		{"after close", func(w *Writer) error { w.Close(); return w.WriteHeader(&Header{Name: "x"}) }},
	}
	for _, tt := range tests {
		if err := tt.do(NewWriter(&bytes.Buffer{}, Options{})); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestDeviceWithoutNumberIsRefused(t *testing.T) {
	tree := fstest.MapFS{"null": {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}}
	if _, err := WriteFS(&bytes.Buffer{}, tree, Options{}); err == nil || !strings.Contains(err.Error(), "cpio.Device") {
		t.Errorf("WriteFS = %v, want an error about the missing device number", err)
	}
}

// TestRoundTrip reads a written archive back with the test reader and
// compares every entry.
func TestRoundTrip(t *testing.T) {
	tree := sampleTree()
	var buf bytes.Buffer
	if _, err := WriteFS(&buf, tree, Options{ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	entries, err := readArchive(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	compareTree(t, tree, entries)
}

// sampleTree has sizes around the padding boundaries, nested folders,
// special permission bits and a device node.
func sampleTree() fstest.MapFS {
	m := fstest.MapFS{
		"dev":               {Mode: fs.ModeDir | 0o755},
		"dev/console":       {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Sys: Device{Major: 5, Minor: 1}},
		"dev/sda":           {Mode: fs.ModeDevice | 0o660, Sys: Device{Major: 8, Minor: 0}},
		"lib/modules/a.ko":  {Data: bytes.Repeat([]byte{0x7f}, 4099), Mode: 0o644},
		"lib/modules/b.ko":  {Data: []byte("b"), Mode: 0o644},
		"lib/modules/load":  {Data: []byte("a.ko\nb.ko\n"), Mode: 0o644},
		"tmp":               {Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		"bin/su":            {Data: []byte("suid!"), Mode: fs.ModeSetuid | 0o755},
		"empty":             {Mode: 0o600},
		"init":              {Data: bytes.Repeat([]byte("init"), 1000), Mode: 0o755},
		"sbin/init":         {Data: []byte("../init"), Mode: fs.ModeSymlink | 0o777},
		"name-with-123-chr": {Data: []byte("abc"), Mode: 0o640},
	}
	return m
}

func compareTree(t *testing.T, tree fstest.MapFS, entries []entry) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.name] = true
		info, err := fs.Lstat(tree, e.name)
		if err != nil {
			// Parent folders that the map only implies are written too.
			if e.mode&0o170000 == typeDir {
				continue
			}
			t.Errorf("archive has %s, the tree does not", e.name)
			continue
		}
		wantMode, _ := headerMode(info.Mode())
		if e.mode != wantMode {
			t.Errorf("%s: mode %o, want %o", e.name, e.mode, wantMode)
		}
		if e.mtime != uint32(testTime.Unix()) {
			t.Errorf("%s: mtime %d", e.name, e.mtime)
		}
		switch info.Mode().Type() {
		case 0:
			if want := tree[e.name].Data; !bytes.Equal(e.data, want) {
				t.Errorf("%s: data differs (%d bytes, want %d)", e.name, len(e.data), len(want))
			}
		case fs.ModeSymlink:
			if string(e.data) != string(tree[e.name].Data) {
				t.Errorf("%s: target %q", e.name, e.data)
			}
		}
		if info.Mode()&fs.ModeDevice != 0 {
			d := tree[e.name].Sys.(Device)
			if e.rmaj != d.Major || e.rmin != d.Minor {
				t.Errorf("%s: device %d:%d, want %d:%d", e.name, e.rmaj, e.rmin, d.Major, d.Minor)
			}
		}
	}
	for name := range tree {
		if !seen[name] {
			t.Errorf("archive lacks %s", name)
		}
	}
}

// TestReadByCpioAndBsdtar lists the archive with GNU cpio (names, modes,
// device numbers) and extracts it with bsdtar (libarchive), comparing file
// contents and symlink targets with the tree.
func TestReadByCpioAndBsdtar(t *testing.T) {
	tree := sampleTree()
	dir := t.TempDir()
	arc := filepath.Join(dir, "initramfs.cpio")
	var buf bytes.Buffer
	if _, err := WriteFS(&buf, tree, Options{ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(arc, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("cpio", func(t *testing.T) {
		if _, err := exec.LookPath("cpio"); err != nil {
			t.Skip("cpio not installed (Debian package cpio)")
		}
		cmd := exec.Command("cpio", "-itv", "--quiet", "--numeric-uid-gid", "-F", arc)
		cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cpio -t: %v\n%s", err, out)
		}
		listing := string(out)
		for _, want := range []string{
			"crw-------   1 0        0          5,   1 May  1  2026 dev/console",
			"brw-rw----   1 0        0          8,   0 May  1  2026 dev/sda",
			"-rwsr-xr-x   1 0        0               5 May  1  2026 bin/su",
			"drwxrwxrwt   2 0        0               0 May  1  2026 tmp",
			"-rw-r--r--   1 0        0            4099 May  1  2026 lib/modules/a.ko",
			"lrwxrwxrwx   1 0        0               7 May  1  2026 sbin/init -> ../init",
		} {
			if !strings.Contains(listing, want) {
				t.Errorf("cpio -tv lacks %q:\n%s", want, listing)
			}
		}
		if n := strings.Count(listing, "\n"); n != countEntries(tree) {
			t.Errorf("cpio lists %d entries, want %d:\n%s", n, countEntries(tree), listing)
		}
	})
	t.Run("bsdtar", func(t *testing.T) {
		if _, err := exec.LookPath("bsdtar"); err != nil {
			t.Skip("bsdtar not installed (Debian package libarchive-tools)")
		}
		out := filepath.Join(dir, "x")
		os.Mkdir(out, 0o755)
		// Device nodes need root to create; list them instead.
		if b, err := exec.Command("bsdtar", "-xf", arc, "-C", out, "--exclude", "dev/*").CombinedOutput(); err != nil {
			t.Fatalf("bsdtar -x: %v\n%s", err, b)
		}
		for name, f := range tree {
			p := filepath.Join(out, name)
			switch {
			case f.Mode.Type() == 0:
				got, err := os.ReadFile(p)
				if err != nil || !bytes.Equal(got, f.Data) {
					t.Errorf("%s: extracted %d bytes (%v), want %d", name, len(got), err, len(f.Data))
				}
				if st, err := os.Lstat(p); err == nil && st.Mode().Perm() != f.Mode.Perm() {
					t.Errorf("%s: extracted mode %v, want %v", name, st.Mode().Perm(), f.Mode.Perm())
				}
			case f.Mode.Type() == fs.ModeSymlink:
				if got, err := os.Readlink(p); err != nil || got != string(f.Data) {
					t.Errorf("%s: link %q (%v)", name, got, err)
				}
			}
		}
		b, err := exec.Command("bsdtar", "-tvf", arc).CombinedOutput()
		if err != nil || !strings.Contains(string(b), "dev/console") {
			t.Errorf("bsdtar -tv: %v\n%s", err, b)
		}
	})
}

// countEntries counts the entries WriteFS writes for tree: every file and
// every folder, implied or not, except the root.
func countEntries(tree fstest.MapFS) int {
	n := 0
	fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
		if p != "." {
			n++
		}
		return nil
	})
	return n
}

// entry is one archive entry as the test reader sees it.
type entry struct {
	name              string
	mode, nlink, ino  uint32
	mtime, rmaj, rmin uint32
	data              []byte
}

// readArchive is an independent newc reader for tests: it checks the
// magic, every padding byte, and the trailer.
func readArchive(b []byte) ([]entry, error) {
	var out []entry
	off := 0
	for {
		if off+110 > len(b) {
			return nil, fmt.Errorf("truncated header at %d", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != Magic {
			return nil, fmt.Errorf("bad magic %q at %d", h[:6], off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return nil, fmt.Errorf("field %d at %d: %v", i, off, err)
			}
			f[i] = uint32(v)
		}
		namesize, size := int(f[11]), int(f[6])
		if namesize < 1 || off+110+namesize > len(b) {
			return nil, fmt.Errorf("bad name size %d at %d", namesize, off)
		}
		name := b[off+110 : off+110+namesize]
		if name[namesize-1] != 0 {
			return nil, fmt.Errorf("name not NUL-terminated at %d", off)
		}
		off += 110 + namesize
		for ; off%4 != 0; off++ {
			if off >= len(b) || b[off] != 0 {
				return nil, fmt.Errorf("bad name padding at %d", off)
			}
		}
		if string(name[:namesize-1]) == trailer {
			if off != len(b) {
				return nil, fmt.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out, nil
		}
		if off+size > len(b) {
			return nil, fmt.Errorf("truncated data of %s", name)
		}
		e := entry{name: string(name[:namesize-1]), ino: f[0], mode: f[1], nlink: f[4], mtime: f[5], rmaj: f[9], rmin: f[10], data: b[off : off+size]}
		if f[2] != 0 || f[3] != 0 || f[12] != 0 {
			return nil, fmt.Errorf("%s: uid/gid/check not zero", e.name)
		}
		out = append(out, e)
		off += size
		for ; off%4 != 0; off++ {
			if off >= len(b) || b[off] != 0 {
				return nil, fmt.Errorf("bad data padding at %d", off)
			}
		}
	}
}
