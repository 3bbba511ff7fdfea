package squashfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
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

	"github.com/piimage/piimage/internal/goldentest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.sha256")

// smallTree is the fixed tree of the golden test. Do not change it: its
// image's hash is in testdata.
func smallTree() fstest.MapFS {
	return fstest.MapFS{
		"bin/init":        file(bytes.Repeat([]byte("\x7fELF init "), 20000), 0o755),
		"bin/sh":          symlink("init"),
		"etc/hostname":    file([]byte("pi\n"), 0o644),
		"etc/empty":       file(nil, 0o644),
		"etc/zeros":       file(make([]byte, 200000), 0o600),
		"var":             dir(0o755),
		"tmp":             dir(0o1777),
		"usr/share/a.txt": file([]byte("same\n"), 0o644),
		"usr/share/b.txt": file([]byte("same\n"), 0o644),
	}
}

func TestGolden(t *testing.T) {
	var m memWriter
	if _, err := Write(&m, smallTree(), Options{ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("unsquashfs"); err == nil {
		img := filepath.Join(t.TempDir(), "golden.img")
		if err := os.WriteFile(img, m.buf, 0o644); err != nil {
			t.Fatal(err)
		}
		compareDir(t, extract(t, img), expected(t, smallTree()), false)
	}
	goldentest.SHA256(t, filepath.Join("testdata", "golden.sha256"), m.buf, *update)
}

func TestSuperblock(t *testing.T) {
	var m memWriter
	n, err := Write(&m, smallTree(), Options{ModTime: testTime, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	sb := m.buf[:superblockSize]
	u16 := func(off int) uint16 { return binary.LittleEndian.Uint16(sb[off:]) }
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(sb[off:]) }
	u64 := func(off int) uint64 { return binary.LittleEndian.Uint64(sb[off:]) }
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"magic", uint64(u32(0)), 0x73717368},
		{"inodes", uint64(u32(4)), 14}, // 7 directories, 6 files, 1 symlink
		{"mkfs time", uint64(u32(8)), uint64(testTime.Unix())},
		{"block size", uint64(u32(12)), 64 << 10},
		{"compression", uint64(u16(20)), 1},
		{"block log", uint64(u16(22)), 16},
		{"flags", uint64(u16(24)), flagDuplicates | flagNoXattrs},
		{"ids", uint64(u16(26)), 1},
		{"major", uint64(u16(28)), 4},
		{"minor", uint64(u16(30)), 0},
		{"xattr table", u64(56), noTable},
		{"export table", u64(88), noTable},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	used := int64(u64(40))
	if used > n || n-used >= 4096 || n%4096 != 0 {
		t.Errorf("bytes used %d, image %d: want the image padded to the next 4 KiB", used, n)
	}
	if !(u64(64) < u64(72) && u64(72) <= u64(80) && u64(80) < u64(48) && u64(48) < uint64(used)) {
		t.Errorf("tables out of order: inodes %d dirs %d fragments %d ids %d used %d", u64(64), u64(72), u64(80), u64(48), used)
	}
	if !bytes.Equal(m.buf[used:], make([]byte, n-used)) {
		t.Error("padding is not zero")
	}
}

func TestDeterministic(t *testing.T) {
	tree := bigTree(t, DefaultBlockSize)
	var a, b memWriter
	if _, err := Write(&a, tree, Options{ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, tree, Options{ModTime: testTime}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.buf, b.buf) {
		t.Fatal("two builds of the same tree differ")
	}
	var c memWriter
	if _, err := Write(&c, tree, Options{ModTime: testTime.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.buf, c.buf) {
		t.Fatal("ModTime does not reach the image")
	}
}

// limitWriter fails the test on any write at or past limit.
type limitWriter struct {
	t     *testing.T
	limit int64
	memWriter
}

func (l *limitWriter) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > l.limit {
		l.t.Errorf("write of %d bytes at %d crosses MaxSize %d", len(p), off, l.limit)
	}
	return l.memWriter.WriteAt(p, off)
}

func TestMaxSize(t *testing.T) {
	tree := smallTree()
	for i := range 40 {
		tree[fmt.Sprintf("data/%d", i)] = file(bytes.Repeat([]byte{byte(i), byte(i * 7), 3}, 10000*i), 0o644)
	}
	need, err := Write(discard{}, tree, Options{ModTime: testTime})
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int64{4096, need / 2, need - 4096, need - 1} {
		w := &limitWriter{t: t, limit: max}
		n, err := Write(w, tree, Options{ModTime: testTime, MaxSize: max})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("MaxSize %d: got %d, %v; want ErrTooLarge", max, n, err)
		}
		if want := "needs " + strconv.FormatInt(need, 10) + " bytes"; !strings.Contains(err.Error(), want) {
			t.Errorf("MaxSize %d: error %q does not say %q", max, err, want)
		}
	}
	w := &limitWriter{t: t, limit: need}
	if n, err := Write(w, tree, Options{ModTime: testTime, MaxSize: need}); err != nil || n != need {
		t.Errorf("MaxSize = size needed: got %d, %v; want %d", n, err, need)
	}
}

func TestOptionErrors(t *testing.T) {
	tree := smallTree()
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"block size not a power of two", Options{BlockSize: 100000}, "BlockSize"},
		{"block size too small", Options{BlockSize: 2048}, "BlockSize"},
		{"block size too large", Options{BlockSize: 2 << 20}, "BlockSize"},
		{"time before 1970", Options{ModTime: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)}, "ModTime"},
		{"time after 2106", Options{ModTime: time.Date(2107, 1, 1, 0, 0, 0, 0, time.UTC)}, "ModTime"},
		{"level too high", Options{CompressionLevel: 10}, "CompressionLevel"},
		{"level negative", Options{CompressionLevel: -2}, "CompressionLevel"},
		{"negative MaxSize", Options{MaxSize: -1}, "MaxSize"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Write(discard{}, tree, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error about %s", err, c.want)
			}
		})
	}
	for _, level := range []int{-1, 1, 5, 9} {
		if _, err := Write(discard{}, tree, Options{CompressionLevel: level}); err != nil {
			t.Errorf("level %d: %v", level, err)
		}
	}
}

func TestTreeErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		tree fstest.MapFS
		want string
	}{
		{"fifo", fstest.MapFS{"p": {Mode: fs.ModeNamedPipe | 0o644}}, "unsupported file type"},
		{"device", fstest.MapFS{"dev/null": {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}}, "unsupported file type"},
		{"long name", fstest.MapFS{strings.Repeat("a", 256): file(nil, 0o644)}, "longer than 255"},
		{"NUL in name", fstest.MapFS{"a\x00b": file(nil, 0o644)}, "NUL"},
		{"empty symlink", fstest.MapFS{"l": symlink("")}, "target"},
		{"long symlink", fstest.MapFS{"l": symlink(strings.Repeat("x", 4096))}, "target"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Write(discard{}, c.tree, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error about %q", err, c.want)
			}
		})
	}
	if _, err := Write(discard{}, fstest.MapFS{strings.Repeat("a", 255): file(nil, 0o644), "l": symlink(strings.Repeat("x", 4095))}, Options{}); err != nil {
		t.Errorf("longest name and target: %v", err)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) WriteAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

func TestWriteError(t *testing.T) {
	_, err := Write(failWriter{}, smallTree(), Options{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("got %v, want the writer's error", err)
	}
}

// TestListingHeaders checks the directory listing rules on a synthetic
// directory: a header every 256 entries and when the inode block changes,
// and an index entry at each header that starts past another 8 KiB.
func TestListingHeaders(t *testing.T) {
	d := &node{kind: kindDir}
	for i := range 1000 {
		block := uint64(0)
		if i >= 700 {
			block = 1234 // the inode table moved to another block
		}
		d.children = append(d.children, &node{name: strings.Repeat("x", 20) + string(rune('a'+i%26)), ino: uint32(i + 2), ref: block<<16 | uint64(i%300)*20})
	}
	var dirs metaWriter
	dirs.c, _ = newCompressor(9)
	l, buf := writeListing(&dirs, d, nil)
	var headers []int
	for p, seen := 0, 0; seen < len(d.children); {
		count := int(binary.LittleEndian.Uint32(buf[p:])) + 1
		block := binary.LittleEndian.Uint32(buf[p+4:])
		base := binary.LittleEndian.Uint32(buf[p+8:])
		headers = append(headers, p)
		p += dirHeaderLen
		for i := range count {
			c := d.children[seen+i]
			off := binary.LittleEndian.Uint16(buf[p:])
			delta := int16(binary.LittleEndian.Uint16(buf[p+2:]))
			size := int(binary.LittleEndian.Uint16(buf[p+6:])) + 1
			name := string(buf[p+8 : p+8+size])
			if name != c.name || uint64(block)<<16|uint64(off) != c.ref || uint32(int64(base)+int64(delta)) != c.ino {
				t.Fatalf("entry %d: got %q block %d offset %d inode %d", seen+i, name, block, off, int64(base)+int64(delta))
			}
			p += dirEntryLen + size
		}
		seen += count
		if count > maxDirCount {
			t.Fatalf("header with %d entries", count)
		}
	}
	if int(l.size) != len(buf)+3 {
		t.Errorf("size %d, want %d", l.size, len(buf)+3)
	}
	// 1000 entries of 29 bytes: 29 KB, so 3 index points; 4 headers for
	// 256-entry groups, plus one where the block changes at entry 700.
	if len(headers) < 5 || len(l.index) != 3 {
		t.Errorf("%d headers, %d index entries; want at least 5 and 3", len(headers), len(l.index))
	}
	for _, x := range l.index {
		found := false
		for _, h := range headers {
			found = found || h == int(x.index)
		}
		if !found {
			t.Errorf("index entry at %d is not at a header", x.index)
		}
		// The name is the first entry's after the header.
		size := int(binary.LittleEndian.Uint16(buf[x.index+dirHeaderLen+6:])) + 1
		if got := string(buf[x.index+dirHeaderLen+8 : int(x.index)+dirHeaderLen+8+size]); got != x.name {
			t.Errorf("index name %q, want %q", x.name, got)
		}
		if want := dirs.starts[x.index/metaBlockSize]; x.start != want {
			t.Errorf("index at %d: block %d, want %d", x.index, x.start, want)
		}
	}
}
