package fat32

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// tinyImage writes tree with a tiny geometry (64 sectors, 30 clusters),
// too small to be FAT32 by cluster count but fine as a reader seed, then
// drops reserved sectors 1..31 so the fuzzer has few bytes to work on.
func tinyImage(t testing.TB, tree fs.FS) []byte {
	t.Helper()
	const total = 64
	l := layout{totalSectors: total, secPerClus: 1, fatSectors: 1, clusters: total - reservedSectors - numFATs}
	bi, err := Options{}.bootInfo()
	if err != nil {
		t.Fatal(err)
	}
	d := newSparseDisk(total * sectorSize)
	if err := write(d, l, bi, tree, newStamp(testTime)); err != nil {
		t.Fatal(err)
	}
	b := d.bytes()
	b = append(b[:sectorSize], b[reservedSectors*sectorSize:]...)
	binary.LittleEndian.PutUint16(b[14:], 1)                         // reserved sectors
	binary.LittleEndian.PutUint32(b[32:], uint32(len(b)/sectorSize)) // total sectors
	return b
}

// FuzzOpen feeds garbage to the reader: it must never panic or loop.
// Seeds are whole small volumes, so fuzz with a short minimize time:
// go test -run '^$' -fuzz FuzzOpen -fuzztime 60s -fuzzminimizetime 5s ./image/fat32
func FuzzOpen(f *testing.F) {
	f.Add(tinyImage(f, fstest.MapFS{
		"config.txt":       {Data: []byte("arm_64bit=1\n")},
		"A long name.txt":  {Data: bytes.Repeat([]byte("x"), 1500)},
		"sub/dir/file.bin": {Data: []byte{1, 2, 3}},
		"sub/emptydir":     {Mode: fs.ModeDir | 0o755},
		"EXACT.TXT":        {Data: []byte("e")},
		"emoji-\U0001F600": {Data: []byte("surrogates")},
	}))
	f.Add(tinyImage(f, fstest.MapFS{}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		_ = fsys.Label()
		visited := 0
		fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			visited++
			if visited > 500 || strings.Count(p, "/") > 16 {
				return fs.SkipAll // directory loops are possible in garbage
			}
			if err != nil || d.IsDir() {
				return nil
			}
			b, err := fsys.ReadFile(p)
			if err == nil && len(b) > len(data)*128 {
				t.Fatalf("%s: %d bytes from a %d-byte image", p, len(b), len(data))
			}
			return nil
		})
	})
}

// FuzzNames writes trees with arbitrary names: Write must either fail with
// an error naming the path or produce a volume that reads back the same
// names and bytes, with unique, valid 8.3 aliases.
func FuzzNames(f *testing.F) {
	for _, s := range [][2]string{
		{"config.txt", "CONFIG.TXT"},
		{"vc4-kms-v3d.dtbo", "vc4-kms-v3d-pi4.dtbo"},
		{"foo~1.txt", "foo.txtx"},
		{".hidden", "...dots"},
		{"名前.txt", "emoji-\U0001F600"},
		{"a b", "ab"},
		{"trailing.", "x:y"},
		{strings.Repeat("n", 255), "n"},
	} {
		f.Add(s[0], s[1], uint16(3))
	}
	f.Fuzz(func(t *testing.T, a, b string, size uint16) {
		tree := fstest.MapFS{}
		for _, n := range []string{a, b} {
			if !fs.ValidPath(n) || strings.Contains(n, "/") || n == "." || n == "d" {
				return
			}
			tree[n] = &fstest.MapFile{Data: bytes.Repeat([]byte{'x'}, int(size%2000))}
			tree["d/"+n] = &fstest.MapFile{Data: []byte(n)}
		}
		d := newSparseDisk(33 * mib)
		err := Write(d, d.size, tree, Options{ModTime: testTime})
		if err != nil {
			if !strings.Contains(err.Error(), a) && !strings.Contains(err.Error(), b) {
				t.Fatalf("error does not name the path: %v", err)
			}
			return
		}
		fsys, err := Open(d, d.size)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		compareTrees(t, tree, fsys)
		for _, dir := range []string{".", "d"} {
			e, err := fsys.lookup("stat", dir)
			if err != nil {
				t.Fatal(err)
			}
			ents, err := fsys.dir(fsys.dirCluster(e))
			if err != nil {
				t.Fatal(err)
			}
			seen := map[[11]byte]bool{}
			for _, e := range ents {
				if _, ok := shortName(displayShort(e.short, 0)); !ok || seen[e.short] {
					t.Fatalf("%s: alias %q invalid or repeated", e.name, e.short)
				}
				seen[e.short] = true
			}
		}
	})
}

// TestTinyImage checks that the fuzz seed is a volume the reader accepts.
func TestTinyImage(t *testing.T) {
	tree := fstest.MapFS{"sub/f.txt": {Data: []byte("hello")}, "Config.txt": {Data: []byte("c")}}
	b := tinyImage(t, tree)
	fsys, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, tree, fsys)
}
