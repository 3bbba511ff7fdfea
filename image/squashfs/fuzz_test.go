package squashfs

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// treeFromBytes turns fuzz input into a valid tree of at most 40 entries
// and about 256 KB: directories, files (small, block-sized, with holes),
// symlinks, names of any characters other than '/' and NUL.
func treeFromBytes(data []byte) fstest.MapFS {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	tree := fstest.MapFS{}
	dirs := []string{"."}
	total := 0
	for len(data) > 0 && len(tree) < 40 && total < 256<<10 {
		op := next()
		parent := dirs[int(next())%len(dirs)]
		// fs.FS names are UTF-8: bytes from 0x80 up become two-byte runes.
		var name []rune
		for range 1 + int(next())%16 {
			r := rune(next())
			if r == '/' || r == 0 {
				r = '_'
			}
			name = append(name, r)
		}
		if string(name) == "." || string(name) == ".." {
			name = append(name, '_')
		}
		p := path.Join(parent, string(name))
		if _, ok := tree[p]; ok {
			continue
		}
		perm := fs.FileMode(next())<<1 | fs.FileMode(next()&1)
		switch op % 4 {
		case 0:
			tree[p] = dir(0o700 | perm&0o777)
			dirs = append(dirs, p)
		case 1, 2:
			size := int(binary.LittleEndian.Uint16([]byte{next(), next()}))
			if op%4 == 1 {
				size %= 3 * 4096 // a few blocks of 4 KiB; case 2: up to 16
			}
			total += size
			content := make([]byte, size)
			if op&0x10 == 0 { // otherwise zeros: holes
				rnd := rand.New(rand.NewPCG(uint64(op), uint64(size)))
				for i := range content {
					content[i] = byte(rnd.IntN(int(op&0x0f) + 1))
				}
			}
			mode := 0o600 | perm&0o777
			if op&0x20 != 0 {
				mode |= fs.ModeSetuid
			}
			if op&0x40 != 0 {
				mode |= fs.ModeSetgid
			}
			tree[p] = file(content, mode)
		case 3:
			target := make([]byte, 1+int(next())%40)
			for i := range target {
				if target[i] = next(); target[i] == 0 {
					target[i] = 'x'
				}
			}
			tree[p] = symlink(string(target))
		}
	}
	return tree
}

// FuzzWrite builds images of random small trees: each must be written
// without error, deterministically, and extract with unsquashfs to exactly
// the tree.
func FuzzWrite(f *testing.F) {
	f.Add([]byte("\x00\x00\x03abc\x01\x01\x01\x00\x10a\xff\xff\x02\x00\x02b\xffpq\x03\x01\x05link\x03\x05t\x00r\x00\x06"))
	f.Add(bytes.Repeat([]byte("\x01\x00\x08fileABCD\x44\x01\x20\x30"), 30))
	f.Add(bytes.Repeat([]byte("\x12\x00\x02zz\xa4\x01\xff\xff"), 10))
	f.Add([]byte("\x00\x00\x01d\xed\x01\x02\x01\x01f\xa4\x00\x00\x10\x03\x01\x01l\x10\x04../d"))
	_, unsquashfsErr := exec.LookPath("unsquashfs")
	f.Fuzz(func(t *testing.T, data []byte) {
		tree := treeFromBytes(data)
		// Level 1: compress/flate is slow under fuzzing instrumentation.
		opts := Options{ModTime: testTime, BlockSize: 4096, CompressionLevel: 1}
		var a, b memWriter
		if _, err := Write(&a, tree, opts); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if _, err := Write(&b, tree, opts); err != nil {
			t.Fatalf("second Write: %v", err)
		}
		if !bytes.Equal(a.buf, b.buf) {
			t.Fatal("two builds differ")
		}
		if unsquashfsErr != nil {
			return
		}
		img := filepath.Join(t.TempDir(), "img")
		if err := os.WriteFile(img, a.buf, 0o644); err != nil {
			t.Fatal(err)
		}
		compareDir(t, extract(t, img), expected(t, tree), false)
	})
}
