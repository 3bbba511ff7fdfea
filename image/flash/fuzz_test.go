package flash

import (
	"bytes"
	"io"
	"testing"
	"testing/fstest"

	"github.com/piimage/piimage/image/ext4"
)

// memDisk is a fixed-size in-memory disk.
type memDisk []byte

func (d memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(d[off:], p), nil }

// FuzzExt4Used feeds ext4Used mangled filesystems: it must not panic, and
// what it returns must be sorted, disjoint and inside the partition.
func FuzzExt4Used(f *testing.F) {
	const size = 8 << 20
	const head = 64 << 10
	for _, bs := range []int{1024, 4096} {
		d := make(memDisk, size)
		tree := fstest.MapFS{"piimage/last-good.yaml": {Data: []byte("hostname: x\n")}}
		if err := ext4.Write(d, size, tree, ext4.Options{BlockSize: bs}); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(d[:head]))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := make([]byte, size)
		copy(d, b)
		ext, err := ext4Used(io.NewSectionReader(bytes.NewReader(d), 0, size), size)
		if err != nil {
			return
		}
		for i, e := range ext {
			if e.Offset < 0 || e.Size <= 0 || e.End() > size {
				t.Fatalf("extent %+v outside the partition", e)
			}
			if i > 0 && e.Offset <= ext[i-1].End() {
				t.Fatalf("extents %+v and %+v out of order", ext[i-1], e)
			}
		}
	})
}
