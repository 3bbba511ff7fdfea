package delta

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// sync runs Sign, Diff and Patcher and checks the rebuilt content.
func sync(t testing.TB, old, new []byte, bs int, wrap func(io.Reader) io.Reader) Result {
	t.Helper()
	sig, err := Sign(bytes.NewReader(old), bs)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p := NewPatcher(&out, bytes.NewReader(old), int64(len(old)), bs, int64(len(new)))
	res, err := Diff(wrap(bytes.NewReader(new)), bs, sig, p)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if !bytes.Equal(out.Bytes(), new) {
		t.Fatalf("rebuilt %d bytes differ from the %d new ones (old %d, bs %d)", out.Len(), len(new), len(old), bs)
	}
	if p.Sum() != res.Sum || res.Size != int64(len(new)) || p.Size() != res.Size {
		t.Fatalf("sums or sizes disagree: %+v", res)
	}
	if res.Literal+res.Matched != res.Size {
		t.Fatalf("literal %d + matched %d != size %d", res.Literal, res.Matched, res.Size)
	}
	return res
}

func TestDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	big := randBytes(r, 1<<20)
	insert := randBytes(r, 5000)
	for _, tc := range []struct {
		name       string
		old, new   []byte
		bs         int
		maxLiteral int64
	}{
		{"both empty", nil, nil, 700, 0},
		{"new file", nil, big[:3000], 700, 3000},
		{"emptied", big[:3000], nil, 700, 0},
		{"identical", big, big, 1024, 0},
		{"append", big[:500000], big[:520000], 1024, 20000 + 1024},
		{"truncate", big, big[:400000], 1024, 1024},
		{"prepend", big[:500000], append(append([]byte{}, insert...), big[:500000]...), 1024, 5000 + 1024},
		{"insert middle", big[:500000], append(append(append([]byte{}, big[:250000]...), insert...), big[250000:500000]...), 1024, 5000 + 2*1024},
		{"delete middle", big, append(append([]byte{}, big[:300000]...), big[310000:]...), 1024, 2 * 1024},
		{"rewrite", big[:100000], big[500000:600000], 700, 100000},
		{"edit one byte", big[:200000], func() []byte { b := bytes.Clone(big[:200000]); b[123456] ^= 1; return b }(), 1024, 1024},
		{"shorter than a block", big[:100], big[:200], 700, 200},
		{"tail block matches", big[:10500], big[:10500], 1000, 0},
		{"exact blocks", big[:10000], big[:10000], 1000, 0},
		{"zeros", make([]byte, 100000), make([]byte, 120000), 700, 20000 + 700},
		{"reordered blocks", big[:4000], append(bytes.Clone(big[2000:4000]), big[:2000]...), 1000, 0},
	} {
		for _, rd := range []struct {
			name string
			wrap func(io.Reader) io.Reader
		}{{"", func(r io.Reader) io.Reader { return r }}, {"/half", iotest.HalfReader}, {"/onebyte", iotest.OneByteReader}} {
			if rd.name == "/onebyte" && len(tc.new) > 200000 {
				continue
			}
			t.Run(tc.name+rd.name, func(t *testing.T) {
				res := sync(t, tc.old, tc.new, tc.bs, rd.wrap)
				if res.Literal > tc.maxLiteral {
					t.Errorf("sent %d literal bytes, want at most %d", res.Literal, tc.maxLiteral)
				}
			})
		}
	}
}

type countSink struct {
	copies, literals int
	maxLit           int
}

func (c *countSink) Copy(index, count uint64) error { c.copies++; return nil }
func (c *countSink) Literal(p []byte) error {
	c.literals++
	c.maxLit = max(c.maxLit, len(p))
	return nil
}

func TestDiffCoalescesAndChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	old := randBytes(r, 300000)
	sig, _ := Sign(bytes.NewReader(old), 1000)
	var c countSink
	if _, err := Diff(bytes.NewReader(old), 1000, sig, &c); err != nil {
		t.Fatal(err)
	}
	if c.copies != 1 || c.literals != 0 {
		t.Errorf("identical content: %d copies, %d literals; want one run", c.copies, c.literals)
	}
	c = countSink{}
	if _, err := Diff(bytes.NewReader(randBytes(r, 1<<20)), 1000, sig, &c); err != nil {
		t.Fatal(err)
	}
	if c.maxLit > LiteralChunk {
		t.Errorf("literal of %d bytes exceeds LiteralChunk", c.maxLit)
	}
}

func TestBlockSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want int
	}{{0, 700}, {490000, 700}, {1 << 20, 1024}, {100 << 20, 10240}, {1 << 40, MaxBlockSize}} {
		if got := BlockSize(tc.n); got != tc.want {
			t.Errorf("BlockSize(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestWeakRolls(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	b := randBytes(r, 5000)
	var w Weak
	w.Reset(b[:700])
	for i := 1; i+700 <= len(b); i++ {
		w.Roll(b[i-1], b[i+699])
		if w.Sum() != WeakSum(b[i:i+700]) {
			t.Fatalf("at %d: rolled %08x, fresh %08x", i, w.Sum(), WeakSum(b[i:i+700]))
		}
	}
}

func TestPatcherRefuses(t *testing.T) {
	basis := bytes.NewReader(make([]byte, 2500))
	for _, tc := range []struct {
		name string
		op   func(p *Patcher) error
		want error
	}{
		{"copy past end", func(p *Patcher) error { return p.Copy(3, 1) }, ErrBadCopy},
		{"count overflow", func(p *Patcher) error { return p.Copy(1, ^uint64(0)) }, ErrBadCopy},
		{"zero count", func(p *Patcher) error { return p.Copy(0, 0) }, ErrBadCopy},
		{"literal over limit", func(p *Patcher) error { return p.Literal(make([]byte, 3001)) }, ErrTooLarge},
		{"copy over limit", func(p *Patcher) error {
			p.Literal(make([]byte, 2000))
			return p.Copy(0, 2)
		}, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPatcher(io.Discard, basis, 2500, 1000, 3000)
			if err := tc.op(p); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if err := NewPatcher(io.Discard, nil, 0, 1000, 10).Copy(0, 1); !errors.Is(err, ErrBadCopy) {
		t.Errorf("copy without basis: %v", err)
	}
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte("hello world, hello world"), []byte("hello brave new world, hello world!"), uint16(4))
	f.Add(bytes.Repeat([]byte{0}, 100), bytes.Repeat([]byte{0}, 99), uint16(7))
	f.Add([]byte{}, []byte("x"), uint16(1))
	f.Fuzz(func(t *testing.T, old, new []byte, bs uint16) {
		if bs == 0 || len(old) > 1<<16 || len(new) > 1<<16 {
			return
		}
		sync(t, old, new, int(bs), iotest.HalfReader)
	})
}

func BenchmarkDiffAppend(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	data := randBytes(r, 8<<20)
	old := data[:7<<20]
	bs := BlockSize(int64(len(old)))
	sig, _ := Sign(bytes.NewReader(old), bs)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		Diff(bytes.NewReader(data), bs, sig, &countSink{})
	}
}
