package ext4

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// benchTree is a web root of about 150 MB: 1,500 files of 4 KiB to 200 KiB
// in 30 directories, and three larger media files.
func benchTree() (fstest.MapFS, int64) {
	r := rand.New(rand.NewPCG(1, 2))
	m := fstest.MapFS{}
	var total int64
	add := func(name string, size int) {
		b := make([]byte, size)
		for i := 0; i < len(b); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < len(b); j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		m[name] = &fstest.MapFile{Data: b, Mode: 0o644}
		total += int64(size)
	}
	for i := range 1500 {
		add(fmt.Sprintf("site/d%02d/page-%04d.html", i%30, i), 4096+r.IntN(196*1024))
	}
	for i := range 3 {
		add(fmt.Sprintf("site/media/clip%d.mp4", i), 4<<20+i*1000)
	}
	return m, total
}

// BenchmarkWrite builds a 1.5 GiB data partition holding ~150 MB of files
// into a sparse file, as the image builder does.
func BenchmarkWrite(b *testing.B) {
	tree, total := benchTree()
	dir := b.TempDir()
	o := testOptions()
	const size = 1536 << 20
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p := filepath.Join(dir, fmt.Sprintf("img-%d", i%2))
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			b.Fatal(err)
		}
		if err := Write(f, size, tree, o); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
