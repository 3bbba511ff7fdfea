package fat32

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// BenchmarkWrite writes a 256 MiB boot partition holding a 46 MB kernel into
// a sparse file, as the image builder does.
func BenchmarkWrite(b *testing.B) {
	tree := fstest.MapFS{
		"config.txt":         {Data: []byte("arm_64bit=1\n")},
		"slot-a/vmlinuz":     {Data: content("vmlinuz", 46_000_000)},
		"slot-a/cmdline.txt": {Data: []byte("console=ttyAMA1\n")},
	}
	const size = 256 << 20
	img := filepath.Join(b.TempDir(), "fat.img")
	b.SetBytes(46_000_000)
	for b.Loop() {
		f, err := os.Create(img)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			b.Fatal(err)
		}
		if err := Write(f, size, tree, Options{ModTime: testTime}); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenRead reads the kernel back with the reader.
func BenchmarkOpenRead(b *testing.B) {
	d := writeSparse(b, 256<<20, fstest.MapFS{"slot-a/vmlinuz": {Data: content("vmlinuz", 46_000_000)}})
	b.SetBytes(46_000_000)
	for b.Loop() {
		fsys, err := Open(d, d.size)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fsys.ReadFile("slot-a/vmlinuz"); err != nil {
			b.Fatal(err)
		}
	}
}
