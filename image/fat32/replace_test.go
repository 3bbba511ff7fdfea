package fat32

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// replaceTree is a small boot partition: node.yaml sits between other
// files, so growing it must take clusters from elsewhere.
func replaceTree() fstest.MapFS {
	m := smallTree()
	m["node.yaml"] = &fstest.MapFile{Data: []byte("hostname: web01\nrole: web\n")}
	m["zz-after.bin"] = &fstest.MapFile{Data: content("after", 5000)}
	m["slot-a/cmdline.txt"] = &fstest.MapFile{Data: []byte("root=PARTUUID=1234abcd-02\n")}
	return m
}

// TestReplace replaces files with contents of every interesting size and
// checks the volume with our reader, mtools and fsck.fat, and that nothing
// outside the file's clusters, its FAT entries, its directory entry and the
// FSInfo counts changed.
func TestReplace(t *testing.T) {
	tests := []struct {
		name, path string
		data       []byte
		mtime      time.Time
	}{
		{"same size", "node.yaml", []byte("hostname: web02\nrole: web\n"), time.Time{}},
		{"shorter", "node.yaml", []byte("x"), time.Time{}},
		{"grow several clusters", "node.yaml", content("big", 3*512+17), time.Time{}},
		{"grow large", "node.yaml", bytes.Repeat([]byte("hostname: web02 # padding\n"), 4000), testTime.Add(time.Hour)},
		{"to empty", "node.yaml", nil, time.Time{}},
		{"from empty", "empty", []byte("now something"), time.Time{}},
		{"shrink big file", "A long name with spaces.text", []byte("tiny"), time.Time{}},
		{"nested", "slot-a/cmdline.txt", []byte("root=PARTUUID=deadbeef-02 rootwait quiet\n"), time.Time{}},
		{"by alias, any case", "CONFIG.TXT", []byte("os_prefix=slot-b/\n"), time.Time{}},
		{"exact cluster", "x.tar.gz", bytes.Repeat([]byte{0xAB}, 1024), time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree := replaceTree()
			img := writeFile(t, 64*mib, tree, Options{ModTime: testTime})
			before, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			v, err := Open(f, 64*mib)
			if err != nil {
				t.Fatal(err)
			}
			entry, err := v.lookup("stat", tc.path)
			if err != nil {
				t.Fatal(err)
			}
			oldChain, err := v.clusterList(entry)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Replace(f, tc.path, tc.data, tc.mtime); err != nil {
				t.Fatalf("Replace: %v", err)
			}
			got, err := v.ReadFile(tc.path)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("reading back through the same FS: %d bytes, %v", len(got), err)
			}
			entry2, err := v.lookup("stat", tc.path)
			if err != nil {
				t.Fatal(err)
			}
			newChain, err := v.clusterList(entry2)
			if err != nil {
				t.Fatal(err)
			}
			// The whole tree, read by a fresh reader.
			want := maps.Clone(tree)
			orig := tc.path
			for p := range tree {
				if strings.EqualFold(p, tc.path) {
					orig = p
				}
			}
			want[orig] = &fstest.MapFile{Data: tc.data}
			v2, err := Open(f, 64*mib)
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, want, v2)
			if !tc.mtime.IsZero() {
				st, _ := v2.Stat(tc.path)
				if !st.ModTime().Equal(tc.mtime.Truncate(2 * time.Second)) {
					t.Errorf("mtime %v, want %v", st.ModTime(), tc.mtime)
				}
			}
			if haveTools(t, "fsck.fat", "mtype") {
				fsckClean(t, img)
				if out := mtools(t, "mtype", "-i", img, "::/"+orig); out != string(tc.data) {
					t.Errorf("mtype: %d bytes, want %d", len(out), len(tc.data))
				}
				dir := mcopyAll(t, img)
				compareTrees(t, want, os.DirFS(dir))
			}
			after, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			checkOnlyChanged(t, v2, before, after, entry.off, append(oldChain, newChain...))
		})
	}
}

// checkOnlyChanged fails if a byte differs outside the clusters in chain,
// their FAT entries in both FATs, the directory entry at entryOff and the
// FSInfo counts.
func checkOnlyChanged(t *testing.T, v *FS, before, after []byte, entryOff int64, chain []uint32) {
	t.Helper()
	allowed := func(off int64) bool {
		if off >= entryOff && off < entryOff+dirEntrySize {
			return true
		}
		if off >= fsInfoSector*sectorSize+488 && off < fsInfoSector*sectorSize+496 {
			return true
		}
		fatSectors := int64(binary.LittleEndian.Uint32(before[36:]))
		for _, c := range chain {
			for i := range int64(numFATs) {
				e := (reservedSectors+i*fatSectors)*sectorSize + int64(c)*4
				if off >= e && off < e+4 {
					return true
				}
			}
			cl := v.dataOff + int64(c-2)*v.clusterSize()
			if off >= cl && off < cl+v.clusterSize() {
				return true
			}
		}
		return false
	}
	n := 0
	for i := range before {
		if before[i] != after[i] && !allowed(int64(i)) {
			if n < 5 {
				t.Errorf("byte %d changed (%#x -> %#x) outside the replaced file's clusters, FAT entries, entry and FSInfo", i, before[i], after[i])
			}
			n++
		}
	}
	if n > 0 {
		t.Errorf("%d bytes changed where they should not", n)
	}
}

// TestReplaceFragmented grows a file twice, so that its chain is no longer
// contiguous, then shrinks it, and checks the free count stays right.
func TestReplaceFragmented(t *testing.T) {
	tree := replaceTree()
	d := writeSparse(t, 64*mib, tree)
	v, err := Open(d, d.size)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{1500, 4000, 100, 9000, 0, 700} {
		data := content("step"+string(rune('a'+i)), n)
		if err := v.Replace(d, "node.yaml", data, time.Time{}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got, err := v.ReadFile("node.yaml"); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("step %d: read back %d bytes, %v", i, len(got), err)
		}
	}
	if !haveTools(t, "fsck.fat") {
		return
	}
	img := filepath.Join(t.TempDir(), "frag.img")
	if err := os.WriteFile(img, d.bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fsckClean(t, img)
}

// TestReplaceErrors checks what Replace refuses.
func TestReplaceErrors(t *testing.T) {
	// A volume with only a few free clusters left.
	tree := fstest.MapFS{"node.yaml": {Data: []byte("a")}, "dir/x": {Data: []byte("x")}}
	d := writeSparse(t, 64*mib, tree)
	v, err := Open(d, d.size)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		data       []byte
		want       error
		contains   string
	}{
		{"missing", "nope.yaml", nil, fs.ErrNotExist, ""},
		{"directory", "dir", nil, nil, "is a directory"},
		{"root", ".", nil, nil, "is a directory"},
		{"invalid path", "../x", nil, fs.ErrInvalid, ""},
		{"too big for the volume", "node.yaml", make([]byte, 70*mib), nil, "volume full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Replace(d, tc.path, tc.data, time.Time{})
			if err == nil {
				t.Fatal("Replace succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if tc.contains != "" && !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not say %q", err, tc.contains)
			}
		})
	}
	// A refused replacement changed nothing.
	if got, _ := v.ReadFile("node.yaml"); string(got) != "a" {
		t.Errorf("node.yaml now %q", got)
	}
}

// memVolume is a growable in-memory volume for FuzzReplace.
type memVolume struct{ b []byte }

func (m *memVolume) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memVolume) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("write outside the volume")
	}
	return copy(m.b[off:], p), nil
}

// FuzzReplace replaces node.yaml on mangled volumes: Replace must not
// panic or loop, and when it succeeds the file reads back.
// go test -run '^$' -fuzz FuzzReplace -fuzztime 60s -fuzzminimizetime 5s ./image/fat32
func FuzzReplace(f *testing.F) {
	f.Add(tinyImage(f, fstest.MapFS{
		"node.yaml": {Data: []byte("hostname: a\n")},
		"other":     {Data: bytes.Repeat([]byte("o"), 700)},
	}), uint16(900))
	f.Add(tinyImage(f, fstest.MapFS{"d/node.yaml": {Data: []byte("x")}, "node.yaml": {}}), uint16(3))
	f.Fuzz(func(t *testing.T, img []byte, n uint16) {
		m := &memVolume{b: bytes.Clone(img)}
		v, err := Open(m, int64(len(m.b)))
		if err != nil {
			return
		}
		data := bytes.Repeat([]byte("y"), int(n)%4000)
		if err := v.Replace(m, "node.yaml", data, time.Time{}); err != nil {
			return
		}
		if got, err := v.ReadFile("node.yaml"); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after Replace: %d bytes, %v", len(got), err)
		}
	})
}
