package squashfs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/fstest"
)

// benchTree is a synthetic 15 MB root: a 6 MB file that compresses about
// like machine code, 4 MB of text, 2 MB of random bytes and 3 MB in 1,000
// small files. It returns the tree and its size in bytes.
func benchTree() (fstest.MapFS, int64) {
	rnd := rand.New(rand.NewPCG(3, 4))
	code := make([]byte, 6<<20)
	for i := range code {
		// Skewed byte values with short repeats, roughly the entropy
		// of a Go binary's text segment.
		if i > 16 && rnd.IntN(4) == 0 {
			code[i] = code[i-1-rnd.IntN(16)]
		} else {
			code[i] = byte(rnd.ExpFloat64() * 24)
		}
	}
	var text bytes.Buffer
	for i := 0; text.Len() < 4<<20; i++ {
		fmt.Fprintf(&text, "%08d msg=%q level=info service=web took=%dms\n", i, "served request", rnd.IntN(900))
	}
	random := make([]byte, 2<<20)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	tree := fstest.MapFS{
		"bin/init":        file(code, 0o755),
		"var/log/old.log": file(text.Bytes(), 0o644),
		"var/lib/random":  file(random, 0o600),
	}
	total := int64(len(code) + text.Len() + len(random))
	for i := range 1000 {
		n := 1 + rnd.IntN(6000)
		b := make([]byte, n)
		for j := range b {
			b[j] = "abcdefghij klmnop\n"[rnd.IntN(18)]
		}
		tree[fmt.Sprintf("etc/conf%d/file%04d.conf", i%20, i)] = file(b, 0o644)
		total += int64(n)
	}
	return tree, total
}

func BenchmarkWrite(b *testing.B) {
	tree, total := benchTree()
	for _, level := range []int{1, 6, 9} {
		b.Run(fmt.Sprintf("level%d", level), func(b *testing.B) {
			b.SetBytes(total)
			var size int64
			for b.Loop() {
				n, err := Write(discard{}, tree, Options{ModTime: testTime, CompressionLevel: level})
				if err != nil {
					b.Fatal(err)
				}
				size = n
			}
			b.ReportMetric(float64(size)/float64(total), "ratio")
		})
	}
}
