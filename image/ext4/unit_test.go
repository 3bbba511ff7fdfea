package ext4

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piimage/piimage/internal/goldentest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden-*.sha256")

func TestCRC32C(t *testing.T) {
	// The standard CRC32C check value, with the inversions ext4 leaves out.
	if got := ^crc32c(^uint32(0), []byte("123456789")); got != 0xE3069283 {
		t.Errorf("crc32c check value %#x, want 0xe3069283", got)
	}
}

func TestHasSuper(t *testing.T) {
	g := &geometry{}
	var got []uint64
	for gr := range uint64(130) {
		if g.hasSuper(gr) {
			got = append(got, gr)
		}
	}
	want := []uint64{0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups with superblocks %v, want %v", got, want)
	}
}

func TestGeometry(t *testing.T) {
	tests := []struct {
		size                                int64
		bs                                  int
		blocks, groups, ipg, jblocks, first uint64
	}{
		{16 * mib, 4096, 4096, 1, 1024, 1024, 0},
		{16 * mib, 1024, 16384, 2, 512, 1024, 1},
		{256 * mib, 4096, 65536, 2, 8192, 4096, 0},
		{1536 * mib, 4096, 393216, 12, 8192, 8192, 0},
		{4 * gib, 4096, 1048576, 32, 8192, 16384, 0},
		// A last group of 30 blocks is dropped, as mke2fs does.
		{128*mib + 30*4096, 4096, 32768, 1, 8192, 4096, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-%d", tt.size, tt.bs), func(t *testing.T) {
			o, err := Options{BlockSize: tt.bs}.normalize(tt.size)
			if err != nil {
				t.Fatal(err)
			}
			g, err := newGeometry(tt.size, o)
			if err != nil {
				t.Fatal(err)
			}
			got := []uint64{g.blocks, g.groups, g.ipg, g.jblocks, g.firstData}
			want := []uint64{tt.blocks, tt.groups, tt.ipg, tt.jblocks, tt.first}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("blocks, groups, ipg, journal, first = %v, want %v", got, want)
			}
		})
	}
}

func TestEncodeTime(t *testing.T) {
	tests := []struct {
		t         time.Time
		lo, extra uint32
	}{
		{time.Unix(0, 0), 0, 0},
		{time.Unix(1<<31-1, 5), 1<<31 - 1, 5 << 2},
		{time.Unix(1<<31, 0), 1 << 31, 1},                    // 2038: first epoch bit
		{time.Unix(1<<32+7, 999999999), 7, 1 | 999999999<<2}, // 2106
	}
	for _, tt := range tests {
		lo, extra := encodeTime(tt.t)
		if lo != tt.lo || extra != tt.extra {
			t.Errorf("encodeTime(%v) = %#x, %#x; want %#x, %#x", tt.t, lo, extra, tt.lo, tt.extra)
		}
	}
}

// TestErrors checks that impossible requests fail with a clear error and
// write nothing out of bounds.
func TestErrors(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("x"), Mode: 0o644}
	many := fstest.MapFS{}
	for i := range 1100 {
		many[fmt.Sprintf("f%d", i)] = file
	}
	tests := []struct {
		name string
		size int64
		tree fs.FS
		o    Options
		want string
	}{
		{"long label", 16 * mib, smallTree(), Options{Label: strings.Repeat("x", 17)}, "longer than 16"},
		{"block size", 16 * mib, smallTree(), Options{BlockSize: 512}, "block size"},
		{"inode ratio", 16 * mib, smallTree(), Options{InodeRatio: 100}, "inode ratio"},
		{"small journal", 16 * mib, smallTree(), Options{JournalBlocks: 10}, "journal"},
		{"huge journal", 16 * mib, smallTree(), Options{JournalBlocks: 5000}, "too small"},
		{"tiny", 64 * kib, smallTree(), Options{}, "too small"},
		{"too full", 16 * mib, fstest.MapFS{"big": {Data: make([]byte, 13*mib)}}, Options{}, "too small"},
		{"negative size", -1, smallTree(), Options{}, "negative"},
		{"time", 16 * mib, smallTree(), Options{ModTime: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}, "1970"},
		{"inodes", 16 * mib, many, Options{}, "inodes"},
		{"fifo", 16 * mib, fstest.MapFS{"p": {Mode: fs.ModeNamedPipe}}, Options{}, "unsupported"},
		{"long name", 16 * mib, fstest.MapFS{strings.Repeat("n", 256): file}, Options{}, "255"},
		{"dot-dot", 16 * mib, fstest.MapFS{"..": file}, Options{}, "valid"},
		{"long symlink", 16 * mib, fstest.MapFS{"l": {Data: bytes.Repeat([]byte("a"), 4096), Mode: fs.ModeSymlink}}, Options{}, "longer"},
		{"empty symlink", 16 * mib, fstest.MapFS{"l": {Mode: fs.ModeSymlink}}, Options{}, "empty"},
		{"full lost+found", 16 * mib, fstest.MapFS{"lost+found/x": file}, Options{}, "lost+found"},
		{"file lost+found", 16 * mib, fstest.MapFS{"lost+found": file}, Options{}, "lost+found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(boundedWriter{t, nil, max(tt.size, 0)}, tt.size, tt.tree, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestEmptyLostFound accepts an empty lost+found in the tree.
func TestEmptyLostFound(t *testing.T) {
	tree := fstest.MapFS{"lost+found": {Mode: fs.ModeDir | 0o700}, "a": {Data: []byte("a")}}
	img := buildImage(t, 16*mib, tree, testOptions())
	if hasTool("e2fsck") {
		fsck(t, img)
	}
}

// TestNamesAndSymlinks covers name and symlink-length edges: 255-byte and
// UTF-8 names, and targets around the 60-byte fast-symlink limit and at
// the block-size maximum.
func TestNamesAndSymlinks(t *testing.T) {
	needTool(t, "e2fsck", "debugfs")
	tree := fstest.MapFS{
		strings.Repeat("n", 255): {Data: []byte("long name")},
		"ünïcödé-名前.txt":         {Data: []byte("utf-8")},
		"with space & 'quote'":   {Data: []byte("odd")},
	}
	for _, n := range []int{1, 59, 60, 61, 1000, 4095} {
		tree[fmt.Sprintf("link-%04d", n)] = &fstest.MapFile{
			Data: bytes.Repeat([]byte("t"), n), Mode: fs.ModeSymlink | 0o777}
	}
	img := buildImage(t, 16*mib, tree, testOptions())
	fsck(t, img)
	compareTree(t, tree, rdump(t, img), rdumpPerm())
	if out := debugfs(t, img, "stat /link-0059"); !strings.Contains(out, `Fast link dest: "tttt`) {
		t.Errorf("59-byte target is not a fast symlink:\n%s", out)
	}
	if out := debugfs(t, img, "stat /link-0060"); !strings.Contains(out, "EXTENTS:") {
		t.Errorf("60-byte target is not a slow symlink:\n%s", out)
	}
}

// TestDefaults checks that zero options give a valid filesystem with a
// derived, stable UUID and hash seed.
func TestDefaults(t *testing.T) {
	o1, err := Options{}.normalize(16 * mib)
	if err != nil {
		t.Fatal(err)
	}
	o2, _ := Options{}.normalize(16 * mib)
	o3, _ := Options{Label: "other"}.normalize(16 * mib)
	if o1.UUID != o2.UUID || o1.HashSeed != o2.HashSeed {
		t.Error("derived UUID or hash seed is not stable")
	}
	if o1.UUID == o3.UUID {
		t.Error("different labels give the same derived UUID")
	}
	if o1.UUID[6]>>4 != 8 || o1.UUID[8]>>6 != 2 {
		t.Errorf("derived UUID %x is not an RFC 9562 version 8 UUID", o1.UUID)
	}
	img := buildImage(t, 16*mib, smallTree(), Options{})
	if hasTool("e2fsck") {
		fsck(t, img)
	}
}

// TestWritesLittle checks that Write writes only metadata and file data:
// a 1.5 GiB filesystem with a small tree costs well under 1 MiB of writes.
func TestWritesLittle(t *testing.T) {
	var c countingWriter
	if err := Write(&c, 1536*mib, smallTree(), testOptions()); err != nil {
		t.Fatal(err)
	}
	if c.n > 1*mib || c.n == 0 {
		t.Errorf("wrote %d bytes for a small tree, want under 1 MiB", c.n)
	}
	t.Logf("%d bytes in %d writes", c.n, c.writes)
}

type countingWriter struct{ n, writes int64 }

func (c *countingWriter) WriteAt(p []byte, _ int64) (int, error) {
	c.n += int64(len(p))
	c.writes++
	return len(p), nil
}

// TestGolden catches accidental format changes: the SHA-256 of a small
// tree's image must match testdata (go test -update rewrites it).
func TestGolden(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			o := testOptions()
			o.BlockSize = bs
			img := buildImage(t, 16*mib, smallTree(), o)
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			goldentest.SHA256(t, filepath.Join("testdata", fmt.Sprintf("golden-16MiB-%d.sha256", bs)), b, *update)
		})
	}
}
