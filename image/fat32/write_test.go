package fat32

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/piimage/piimage/internal/goldentest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.sha256")

// TestFsckSizes writes the small tree at the sizes go-diskfs gets wrong and
// has fsck.fat, mtools and our reader check each.
func TestFsckSizes(t *testing.T) {
	needTool(t, "fsck.fat")
	for _, mb := range []int64{33, 64, 129, 194, 256, 259, 260, 261, 505, 512, 1024, 2048} {
		t.Run(fmt.Sprintf("%dMiB", mb), func(t *testing.T) {
			tree := smallTree()
			img := writeFile(t, mb*mib, tree, Options{ModTime: testTime, VolumeID: 0xCAFE0001})
			fsckClean(t, img)
			compareTrees(t, tree, os.DirFS(mcopyAll(t, img)))
			compareTrees(t, tree, openFile(t, img))
		})
	}
}

// TestPiTree writes a tree shaped like the boot partition and reads every
// file back with mtools and with our reader.
func TestPiTree(t *testing.T) {
	tree := piTree()
	for _, mb := range []int64{256, 512} {
		t.Run(fmt.Sprintf("%dMiB", mb), func(t *testing.T) {
			img := writeFile(t, mb*mib, tree, Options{ModTime: testTime, Label: "piboot", VolumeID: 0x1234ABCD})
			fsckClean(t, img)
			out := mtools(t, "mdir", "-i", img, "::/")
			for _, want := range []string{"Volume in drive : is PIBOOT", "Serial Number is 1234-ABCD",
				"CONFIG   TXT", "config.txt", "BOOTCODE BIN", "SLOT-A       <DIR>"} {
				if !strings.Contains(out, want) {
					t.Errorf("mdir ::/ lacks %q:\n%s", want, out)
				}
			}
			// The 8.3 alias is what the firmware matches on.
			if got := mtools(t, "mtype", "-i", img, "::/CONFIG.TXT"); got != string(tree["config.txt"].Data) {
				t.Errorf("mtype ::/CONFIG.TXT = %q", got)
			}
			compareTrees(t, tree, os.DirFS(mcopyAll(t, img)))
			compareTrees(t, tree, openFile(t, img))
		})
	}
}

// openFile opens img with our reader.
func openFile(t *testing.T, img string) *FS {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := Open(f, st.Size())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return fsys
}

// TestLargeDirectory puts 1,000 long names (and 2,000 entries with a
// shared prefix) in one directory spanning many clusters.
func TestLargeDirectory(t *testing.T) {
	tree := fstest.MapFS{}
	for i := range 1000 {
		tree[fmt.Sprintf("many/overlay-number-%04d.dtbo", i)] = &fstest.MapFile{Data: []byte(fmt.Sprint(i))}
		tree[fmt.Sprintf("many/sub-%04d/x", i%7)] = &fstest.MapFile{Data: []byte("x")}
	}
	img := writeFile(t, 64*mib, tree, Options{ModTime: testTime})
	compareTrees(t, tree, openFile(t, img))
	if haveTools(t, "fsck.fat", "mdir") {
		fsckClean(t, img)
		// mcopy takes a second for 1,000 files; the bare listing shows
		// every long name mtools found.
		var want []string
		for p := range tree {
			if strings.HasPrefix(p, "many/overlay") {
				want = append(want, "::/"+p)
			}
		}
		var got []string
		for _, l := range strings.Split(mtools(t, "mdir", "-b", "-i", img, "::/many"), "\n") {
			if strings.HasPrefix(l, "::/many/overlay") {
				got = append(got, l)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("mdir -b lists %d overlay files, want %d", len(got), len(want))
		}
		if got := mtools(t, "mtype", "-i", img, "::/many/OVE~1000.DTB"); got != "999" {
			t.Errorf("mtype OVE~1000.DTB = %q, want 999", got)
		}
	}
}

// TestDeterministic builds the same tree twice and compares every byte,
// and checks the image against the golden hash in testdata.
func TestDeterministic(t *testing.T) {
	build := func() []byte {
		d := newSparseDisk(64 * mib)
		if err := Write(d, d.size, smallTree(), Options{ModTime: testTime, VolumeID: 0xDEADBEEF, Label: "golden"}); err != nil {
			t.Fatal(err)
		}
		return d.bytes()
	}
	a, b := build(), build()
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same tree differ")
	}
	goldentest.SHA256(t, filepath.Join("testdata", "golden.sha256"), a, *update)
}

// TestWriteErrors checks that trees FAT cannot hold fail with an error
// naming the path.
func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		tree fstest.MapFS
		size int64
		opts Options
		want string
	}{
		{"symlink", fstest.MapFS{"slot-a/current": {Data: []byte("slot-b"), Mode: fs.ModeSymlink | 0o777}}, 64 * mib, Options{}, "slot-a/current: symbolic links"},
		{"case clash", fstest.MapFS{"Config.txt": {}, "config.txt": {}}, 64 * mib, Options{}, "ignore case"},
		{"colon", fstest.MapFS{"a/b:c": {}}, 64 * mib, Options{}, "a/b:c"},
		{"trailing dot", fstest.MapFS{"name.": {}}, 64 * mib, Options{}, "end in a dot"},
		{"too long", fstest.MapFS{strings.Repeat("n", 256): {}}, 64 * mib, Options{}, "UTF-16 units"},
		{"too small", fstest.MapFS{}, 32 * mib, Options{}, "too small for FAT32"},
		{"full", fstest.MapFS{"big": {Data: make([]byte, 70*mib)}}, 64 * mib, Options{}, "does not fit"},
		{"label", fstest.MapFS{}, 64 * mib, Options{Label: "TWELVE-CHARS"}, "longer than 11"},
		{"label char", fstest.MapFS{}, 64 * mib, Options{Label: "A.B"}, "not allowed"},
		{"oem", fstest.MapFS{}, 64 * mib, Options{OEMName: "NINE CHAR"}, "longer than 8"},
		{"cluster size", fstest.MapFS{}, 64 * mib, Options{SectorsPerCluster: 3}, "power of two"},
		{"too few clusters", fstest.MapFS{}, 256 * mib, Options{SectorsPerCluster: 8}, "FAT32 needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(newSparseDisk(tt.size), tt.size, tt.tree, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestOptions checks the boot sector fields Options control.
func TestOptions(t *testing.T) {
	d := newSparseDisk(300 * mib)
	opts := Options{Label: "my boot", VolumeID: 0x01020304, OEMName: "piimage", HiddenSectors: 8192, ModTime: testTime}
	if err := Write(d, d.size, fstest.MapFS{"f": {Data: []byte("x")}}, opts); err != nil {
		t.Fatal(err)
	}
	b := d.bytes()
	checks := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"oem", b[3:11], []byte("piimage ")},
		{"sectors per cluster (4 KiB above 260 MiB)", b[13:14], []byte{8}},
		{"reserved", b[14:16], []byte{32, 0}},
		{"media", b[21:22], []byte{0xF8}},
		{"hidden", b[28:32], []byte{0x00, 0x20, 0, 0}},
		{"volume id", b[67:71], []byte{4, 3, 2, 1}},
		{"label", b[71:82], []byte("MY BOOT    ")},
		{"type", b[82:90], []byte("FAT32   ")},
		{"backup boot", b[6*512 : 7*512], b[:512]},
		{"backup fsinfo", b[7*512 : 8*512], b[512:1024]},
	}
	for _, c := range checks {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s: % x, want % x", c.name, c.got, c.want)
		}
	}
	fsys, err := Open(d, d.size)
	if err != nil {
		t.Fatal(err)
	}
	if got := fsys.Label(); got != "MY BOOT" {
		t.Errorf("Label() = %q", got)
	}
	if got := fsys.VolumeID(); got != 0x01020304 {
		t.Errorf("VolumeID() = %#x", got)
	}
	st, err := fsys.Stat("f")
	if err != nil {
		t.Fatal(err)
	}
	if want := testTime.Truncate(2e9); !st.ModTime().Equal(want) {
		t.Errorf("ModTime = %v, want %v", st.ModTime(), want)
	}
}

// orderedDisk fails writes that go backwards or leave [0, size).
type orderedDisk struct {
	*sparseDisk
	end int64
}

func (d *orderedDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < d.end {
		return 0, fmt.Errorf("write at %d goes back before %d", off, d.end)
	}
	d.end = off + int64(len(p))
	return d.sparseDisk.WriteAt(p, off)
}

// TestWriteOrder checks the documented write pattern: increasing offsets
// inside [0, size), so w may be a stream-like sparse file.
func TestWriteOrder(t *testing.T) {
	for _, size := range []int64{64*mib + 511, 300 * mib} {
		d := &orderedDisk{sparseDisk: newSparseDisk(size)}
		if err := Write(d, size, smallTree(), Options{ModTime: testTime}); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
	}
}
