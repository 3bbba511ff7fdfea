package squashfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// bigTree is a tree with every case the writer handles: an executable Go
// binary, incompressible and compressible files, files of 0 bytes, exactly a
// block and a block + 1 byte, holes, duplicates, symlinks, special
// permission bits, empty and nested directories, a directory with 1,000
// entries (indexed) and one whose listing is over 64 KiB.
func bigTree(t testing.TB, blockSize int) fstest.MapFS {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binary, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	var text bytes.Buffer
	for i := 0; text.Len() < 1<<20; i++ {
		fmt.Fprintf(&text, "line %d: the quick brown fox jumps over the lazy dog %x\n", i, i*i)
	}
	holes := append(append(random(blockSize), make([]byte, 2*blockSize)...), random(100)...)
	m := fstest.MapFS{
		"bin/init":             file(binary, 0o755),
		"bin/sh":               symlink("init"),
		"bin/su":               file([]byte("#!/bin/false\n"), 0o4755),
		"etc/hostname":         file([]byte("pi\n"), 0o644),
		"etc/empty":            file(nil, 0o600),
		"etc/resolv.conf":      symlink("/run/resolv.conf"),
		"etc/dangling":         symlink("no/such/" + strings.Repeat("x", 300)),
		"empty":                dir(0o755),
		"tmp":                  dir(0o1777),
		"srv/group":            dir(0o2775),
		"a/b/c/d/e/f/deep.txt": file([]byte("deep\n"), 0o444),
		"a/b/c/d/e/f/g":        dir(0o700),
		"blocks/zero":          file(nil, 0o644),
		"blocks/one":           file([]byte{1}, 0o644),
		"blocks/exact":         file(random(blockSize), 0o644),
		"blocks/exact+1":       file(random(blockSize+1), 0o644),
		"blocks/exact-1":       file(random(blockSize-1), 0o644),
		"blocks/two-exact":     file(random(2*blockSize), 0o644),
		"blocks/zeros":         file(make([]byte, 3*blockSize), 0o644),
		"blocks/holes":         file(holes, 0o644),
		"data/random.bin":      file(random(1<<20), 0o644),
		"data/text.txt":        file(text.Bytes(), 0o644),
		"data/text-copy.txt":   file(text.Bytes(), 0o644),
		"data/small-a":         file([]byte("same small file\n"), 0o644),
		"data/small-b":         file([]byte("same small file\n"), 0o644),
		"data/small-c":         file([]byte("same size file!\n"), 0o644),
	}
	for i := range 1000 {
		m[fmt.Sprintf("many/f%04d", i)] = file(random(rnd.IntN(600)), 0o644)
	}
	for i := range 5 {
		m[fmt.Sprintf("many/sub%d/x", i)] = file([]byte("x"), 0o644)
	}
	for i := range 600 {
		m[fmt.Sprintf("long/%s%04d", strings.Repeat("n", 120), i)] = symlink("target")
	}
	return m
}

// unsquashfsLine is one line of unsquashfs -lln output.
var unsquashfsLine = regexp.MustCompile(`^(\S+) (\d+)/(\d+) +(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) squashfs-root(.*)$`)

// checkListing compares unsquashfs -lln output with the tree.
func checkListing(t *testing.T, img string, want map[string]entry) {
	t.Helper()
	out := run(t, "unsquashfs", "-lln", img)
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := unsquashfsLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("unexpected unsquashfs line %q", line)
			continue
		}
		p, target, isLink := strings.Cut(m[6], " -> ")
		p = strings.TrimPrefix(p, "/")
		if p == "" {
			p = "."
		}
		w, ok := want[p]
		if !ok {
			t.Errorf("%s: listed but not in the tree", p)
			continue
		}
		seen++
		if m[1] != lsMode(w.mode) {
			t.Errorf("%s: mode %s, want %s", p, m[1], lsMode(w.mode))
		}
		if m[2] != "0" || m[3] != "0" {
			t.Errorf("%s: owner %s/%s, want 0/0", p, m[2], m[3])
		}
		if m[5] != testTime.Format("2006-01-02 15:04") {
			t.Errorf("%s: time %s, want %s", p, m[5], testTime.Format("2006-01-02 15:04"))
		}
		size, _ := strconv.Atoi(m[4])
		switch {
		case w.mode&fs.ModeSymlink != 0:
			if !isLink || target != w.target || size != len(w.target) {
				t.Errorf("%s: link to %q (size %d), want %q", p, target, size, w.target)
			}
		case w.mode.IsRegular():
			if size != len(w.data) {
				t.Errorf("%s: size %d, want %d", p, size, len(w.data))
			}
		}
	}
	if seen != len(want) {
		t.Errorf("unsquashfs listed %d entries, the tree has %d", seen, len(want))
	}
}

// checkSuperblock checks unsquashfs -s output.
func checkSuperblock(t *testing.T, img string, blockSize int) {
	t.Helper()
	out := run(t, "unsquashfs", "-s", img)
	for _, s := range []string{
		"Found a valid SQUASHFS 4:0 superblock",
		"Creation or last append time " + testTime.Format(time.ANSIC),
		"Compression gzip",
		fmt.Sprintf("Block size %d\n", blockSize),
		"Number of ids 1",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("unsquashfs -s lacks %q:\n%s", s, out)
		}
	}
}

// extract unpacks img with unsquashfs and returns the directory.
func extract(t *testing.T, img string) string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "x")
	run(t, "unsquashfs", "-no-progress", "-quiet", "-d", dest, img)
	return dest
}

func TestUnsquashfs(t *testing.T) {
	needTool(t, "unsquashfs")
	for _, bs := range []int{DefaultBlockSize, 4 << 10, 1 << 20} {
		t.Run(strconv.Itoa(bs), func(t *testing.T) {
			tree := bigTree(t, bs)
			if bs != DefaultBlockSize {
				// Keep the test fast: the big files only change the
				// number of blocks, the big directories not at all.
				for p := range tree {
					if p == "bin/init" || p == "data/random.bin" || strings.HasPrefix(p, "many/") || strings.HasPrefix(p, "long/") {
						delete(tree, p)
					}
				}
			}
			want := expected(t, tree)
			img := build(t, tree, Options{ModTime: testTime, BlockSize: bs})
			checkSuperblock(t, img, bs)
			checkListing(t, img, want)
			compareDir(t, extract(t, img), want, false)
		})
	}
}

// TestMount loop-mounts an image and compares it with the tree through the
// kernel's squashfs driver, which also checks directory index lookups, link
// counts, owners and times.
func TestMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop mount needs root")
	}
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skip("mount not installed")
	}
	tree := bigTree(t, DefaultBlockSize)
	img := build(t, tree, Options{ModTime: testTime})
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "squashfs", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount -t squashfs -o loop,ro failed (no loop devices or squashfs module?): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	compareDir(t, mnt, expected(t, tree), true)
	// Look names up directly (not by walking): the kernel then uses the
	// directory index to skip into the middle of large directories.
	for _, name := range []string{"many/f0999", "many/f0500", "many/sub4/x", "long/" + strings.Repeat("n", 120) + "0599"} {
		if _, err := os.Lstat(filepath.Join(mnt, name)); err != nil {
			t.Errorf("lookup: %v", err)
		}
	}
	if _, err := os.Lstat(filepath.Join(mnt, "many/f0999x")); !os.IsNotExist(err) {
		t.Errorf("lookup of a missing name: %v, want not exist", err)
	}
}
