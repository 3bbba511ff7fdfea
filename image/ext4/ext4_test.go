package ext4

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// bigTreeOnce builds the large test tree once: 2,000 files in one
// directory, nested directories, empty files, a 60 MB file and symlinks.
var bigTreeOnce = sync.OnceValue(func() fstest.MapFS {
	m := smallTree()
	for i := range 2000 {
		m[fmt.Sprintf("site/many/file-%04d.html", i)] = &fstest.MapFile{
			Data: []byte(strings.Repeat(fmt.Sprintf("<p>%d</p>\n", i), i%50)), Mode: 0o644}
	}
	for i := range 20 {
		m[fmt.Sprintf("site/a/b/c/d/e/f/g/h/empty-%02d", i)] = &fstest.MapFile{Mode: 0o640}
		m[fmt.Sprintf("site/links/l%02d", i)] = &fstest.MapFile{
			Data: []byte(strings.Repeat("../", i*3) + "target"), Mode: fs.ModeSymlink | 0o777}
	}
	m["site/emptydir"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	big := make([]byte, 60*mib)
	for i := range big {
		big[i] = byte(i*7/4096) ^ byte(i)
	}
	m["site/video/big.bin"] = &fstest.MapFile{Data: big, Mode: 0o644}
	return m
})

// TestSizes builds filesystems of every supported shape and checks them
// with e2fsck, reads every file back with debugfs, and checks the
// superblock with dumpe2fs.
func TestSizes(t *testing.T) {
	needTool(t, "e2fsck", "debugfs", "dumpe2fs")
	tests := []struct {
		name      string
		size      int64
		blockSize int
		tree      fs.FS
		journal   int
	}{
		{"16MiB", 16 * mib, 0, smallTree(), 0},
		{"16MiB-1k", 16 * mib, 1024, smallTree(), 0},
		{"100MiB-2k", 100 * mib, 2048, smallTree(), 0},
		{"128MiB-1k", 128 * mib, 1024, bigTreeOnce(), 0}, // 60 MB file: depth-1 extent tree
		{"256MiB", 256 * mib, 0, smallTree(), 0},
		{"1.5GiB", 1536 * mib, 0, bigTreeOnce(), 0},
		{"4GiB", 4 * gib, 0, smallTree(), 0},
		{"odd", 200*mib + 12345, 0, smallTree(), 0},
		{"empty", 64 * mib, 0, fstest.MapFS{}, 0},
		{"journal", 64 * mib, 0, smallTree(), 2500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			o.BlockSize = tt.blockSize
			o.JournalBlocks = tt.journal
			img := buildImage(t, tt.size, tt.tree, o)
			fsck(t, img)
			compareTree(t, tt.tree, rdump(t, img), rdumpPerm())
			checkSuperblock(t, img)
		})
	}
}

// checkSuperblock checks dumpe2fs's view of the features, UUID and label.
func checkSuperblock(t *testing.T, img string) {
	t.Helper()
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h: %v", err)
	}
	for _, want := range []string{
		"Filesystem volume name:   data",
		"Filesystem UUID:          01234567-89ab-cdef-0123-456789abcdef",
		"Filesystem features:      has_journal ext_attr dir_index filetype extent 64bit flex_bg " +
			"sparse_super large_file huge_file dir_nlink extra_isize metadata_csum",
		"Directory Hash Seed:      f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f",
		"Filesystem state:         clean",
		"Filesystem created:       Fri Mar 14 15:09:26 2025",
		"Journal start:            0",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dumpe2fs -h lacks %q:\n%s", want, out)
		}
	}
}

// TestListing checks debugfs's long listing of the root: modes, sizes,
// inode numbers, link counts.
func TestListing(t *testing.T) {
	needTool(t, "debugfs")
	img := buildImage(t, 16*mib, smallTree(), testOptions())
	out := debugfs(t, img, "ls -l /")
	for _, want := range []string{
		`^\s+2\s+40555 \(2\)\s+0\s+0\s+4096 14-Mar-2025 15:09 \.$`,
		`^\s+11\s+40700 \(2\)\s+0\s+0\s+16384 .* lost\+found$`,
		`^\s+\d+\s+100600 \(1\)\s+0\s+0\s+0 .* empty$`,
		`^\s+\d+\s+40750 \(2\)\s+0\s+0\s+4096 .* etc$`,
		`^\s+\d+\s+100644 \(1\)\s+0\s+0\s+13 .* hello.txt$`,
		`^\s+\d+\s+120777 \(7\)\s+0\s+0\s+9 .* link-fast$`,
		`^\s+\d+\s+120777 \(7\)\s+0\s+0\s+106 .* link-slow$`,
		`^\s+\d+\s+41777 \(2\)\s+0\s+0\s+4096 .* sticky$`,
	} {
		if !regexp.MustCompile(`(?m)` + want).MatchString(out) {
			t.Errorf("ls -l / has no line matching %s:\n%s", want, out)
		}
	}
	if out := debugfs(t, img, "stat /bin/tool"); !strings.Contains(out, "Mode:  06755") {
		t.Errorf("setuid bit lost:\n%s", out)
	}
	if out := debugfs(t, img, "stat /"); !strings.Contains(out, "Links: 8") {
		t.Errorf("root should have 8 links (6 subdirectories and lost+found):\n%s", out)
	}
}

// TestHugeFiles checks a depth-1 extent tree with 4 KiB blocks (a file of
// more than 4 extents of 128 MiB) and a file larger than 4 GiB
// (large_file): e2fsck, sizes, and every marker of the generated content
// found where debugfs maps it.
func TestHugeFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 5 GB of (mostly zero) generated data")
	}
	needTool(t, "e2fsck", "debugfs")
	tree := lazyFS{stride: 64 * mib, files: map[string]int64{
		"five-extents.bin": 600*mib + 123,
		"over-4GiB.bin":    4*gib + 777,
	}}
	img := buildImage(t, 6*gib, tree, testOptions())
	fsck(t, img)
	for name, size := range tree.files {
		stat := debugfs(t, img, "stat /"+name)
		if !strings.Contains(stat, "(ETB0)") {
			t.Errorf("%s: no depth-1 extent tree:\n%s", name, stat)
		}
		if !strings.Contains(stat, fmt.Sprintf("Size: %d\n", size)) {
			t.Errorf("%s: size is not %d:\n%s", name, size, stat)
		}
		checkMarkers(t, img, name, size, tree.stride)
	}
}

// checkMarkers finds the block of every marker of a lazyFS file with
// debugfs bmap and checks the marker in the image at that block.
func checkMarkers(t *testing.T, img, name string, size, stride int64) {
	t.Helper()
	const bs = 4096
	var cmds strings.Builder
	var offs []int64
	for off := int64(0); off < size; off += stride {
		fmt.Fprintf(&cmds, "bmap /%s %d\n", name, off/bs)
		offs = append(offs, off)
	}
	cmd := exec.Command("debugfs", "-f", "-", img)
	cmd.Stdin = strings.NewReader(cmds.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("debugfs bmap: %v", err)
	}
	var blocks []int64
	for _, line := range strings.Split(string(out), "\n") {
		var b int64
		if _, err := fmt.Sscanf(line, "%d", &b); err == nil {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) != len(offs) {
		t.Fatalf("%s: debugfs mapped %d blocks, want %d:\n%s", name, len(blocks), len(offs), out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, off := range offs {
		got := make([]byte, 8)
		want := make([]byte, 8)
		if _, err := f.ReadAt(got, blocks[i]*bs+off%bs); err != nil {
			t.Fatal(err)
		}
		for j := range want {
			want[j] = lazyByte(off+int64(j), stride)
		}
		n := min(int64(8), size-off)
		if !bytes.Equal(got[:n], want[:n]) {
			t.Errorf("%s: marker at %d is %x in block %d, want %x", name, off, got[:n], blocks[i], want[:n])
		}
	}
}

// TestDeterminism builds the same tree twice and compares the bytes.
func TestDeterminism(t *testing.T) {
	a := buildImage(t, 64*mib, smallTree(), testOptions())
	b := buildImage(t, 64*mib, smallTree(), testOptions())
	ab, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ab, bb) {
		t.Fatal("two builds of the same tree differ")
	}
}
