package cpio

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzWriteFS builds a tree from fuzzed names and sizes: WriteFS must either
// refuse it with an error or write an archive that the test reader parses
// back to the same entries.
func FuzzWriteFS(f *testing.F) {
	f.Add("init", 5, "dev/console", 0, "lib/modules/x.ko", 4099)
	f.Add("a", 0, "a/b", 1, "a/b/c", 2)
	f.Add("TRAILER!!!", 3, "x y", 4, "\x00", 1)
	f.Fuzz(func(t *testing.T, n1 string, s1 int, n2 string, s2 int, n3 string, s3 int) {
		tree := fstest.MapFS{}
		for i, nm := range []string{n1, n2, n3} {
			size := []int{s1, s2, s3}[i]
			if size < 0 || size > 1<<16 {
				return
			}
			if !fs.ValidPath(nm) || nm == "." {
				return
			}
			tree[nm] = &fstest.MapFile{Data: bytes.Repeat([]byte{byte(i + 'a')}, size), Mode: 0o644}
		}
		// A file that is also a parent folder makes the tree invalid
		// for fs.WalkDir; fstest.MapFS then lists both, skip those.
		for nm := range tree {
			for other := range tree {
				if strings.HasPrefix(other, nm+"/") {
					return
				}
			}
		}
		var buf bytes.Buffer
		if _, err := WriteFS(&buf, tree, Options{ModTime: testTime}); err != nil {
			return
		}
		entries, err := readArchive(buf.Bytes())
		if err != nil {
			t.Fatalf("archive does not parse: %v", err)
		}
		for _, e := range entries {
			if f, ok := tree[e.name]; ok && !bytes.Equal(f.Data, e.data) {
				t.Fatalf("%s: data differs", e.name)
			}
		}
	})
}
