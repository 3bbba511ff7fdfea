package ext4

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// fuzzTree turns bytes into a tree of at most 64 entries: each entry is an
// op byte (kind and permissions), a name length, the name, and a size byte.
func fuzzTree(data []byte) fstest.MapFS {
	m := fstest.MapFS{}
	for len(data) >= 3 && len(m) < 64 {
		op, nlen := data[0], int(data[1])
		data = data[2:]
		nlen = min(nlen, len(data))
		name := string(data[:nlen])
		data = data[nlen:]
		size := int(op)
		if len(data) > 0 {
			size += int(data[0]) * 4099
			data = data[1:]
		}
		perm := fs.FileMode(op)*0o111&0o777 | 0o400
		switch op % 4 {
		case 0, 3:
			b := bytes.Repeat([]byte{op, byte(size)}, size/2)
			if op%4 == 3 {
				b, perm = nil, perm|fs.ModeSetuid
			}
			m[name] = &fstest.MapFile{Data: b, Mode: perm}
		case 1:
			m[name] = &fstest.MapFile{Mode: fs.ModeDir | perm | 0o700}
		case 2:
			target := name + strings.Repeat("/t", size%2500)
			m[name+".lnk"] = &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
		}
	}
	return m
}

// FuzzWrite checks that any tree gives either a clear error or a
// filesystem that e2fsck finds clean and debugfs reads back as the tree.
func FuzzWrite(f *testing.F) {
	f.Add([]byte("\x00\x05hello\x10"))
	f.Add([]byte("\x01\x03dir\x00\x00\x07dir/abc\x50\x02\x04link\xff"))
	f.Add([]byte("\x03\x05empty\x00\x00\x02..\x00"))
	f.Add([]byte("\x01\x01a\x00\x01\x03a/b\x00\x00\x05a/b/c\xff\x02\x02a/\x10"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tree := fuzzTree(data)
		const size = 16 << 20
		img := filepath.Join(t.TempDir(), "fuzz.img")
		fh, err := os.Create(img)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if err := fh.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if err := Write(boundedWriter{t, fh, size}, size, tree, testOptions()); err != nil {
			if !strings.HasPrefix(err.Error(), "ext4: ") {
				t.Errorf("unclear error: %v", err)
			}
			return
		}
		if !hasTool("e2fsck") || !hasTool("debugfs") {
			return
		}
		fsck(t, img)
		compareTree(t, tree, rdump(t, img), rdumpPerm())
	})
}
