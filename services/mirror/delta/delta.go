// Package delta is the mirror's rsync-style delta transfer. The receiver
// describes its copy of a file (the basis) as block checksums (Sign); the
// sender rolls a weak checksum over the new content and, where a window
// matches a block of the basis (weak sum first, then the strong one), sends
// "copy block i" instead of the bytes (Diff); the receiver rebuilds the new
// content from those instructions and the basis (Patcher). An append or a
// small edit of a large file thus costs about the changed bytes plus the
// signature (12 bytes per block).
//
// The strong checksum is the first 8 bytes of the block's SHA-256. A block
// collision can only make the rebuilt file wrong, never unsafe, and the
// whole-file SHA-256 that Diff returns catches it: the receiver then asks
// again with no basis.
package delta

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"

	"github.com/piimage/piimage/services/mirror/wire"
)

// Block sizes, as rsync chooses them: the square root of the file size,
// rounded to 8 bytes, within these bounds.
const (
	MinBlockSize = 700
	MaxBlockSize = 128 << 10
)

// LiteralChunk bounds the data of one Literal that Diff emits.
const LiteralChunk = 128 << 10

// maxCopyRun bounds the bytes one Copy stands for, so that a long match
// still emits something now and then (the sender's heartbeat rides on it).
const maxCopyRun = 4 << 20

// BlockSize returns the block size for a basis of n bytes.
func BlockSize(n int64) int {
	if n <= MinBlockSize*MinBlockSize {
		return MinBlockSize
	}
	s := int(math.Sqrt(float64(n))) &^ 7
	return min(max(s, MinBlockSize), MaxBlockSize)
}

// Weak is the rolling checksum of rsync: a is the byte sum and b the sum of
// the running sums, both modulo 2^16; the checksum is a | b<<16.
type Weak struct {
	a, b uint32
	n    uint32
}

// Reset sets the checksum to that of window.
func (w *Weak) Reset(window []byte) {
	var a, b uint32
	n := uint32(len(window))
	for i, c := range window {
		a += uint32(c)
		b += (n - uint32(i)) * uint32(c)
	}
	w.a, w.b, w.n = a&0xffff, b&0xffff, n
}

// Roll moves the window one byte on: out leaves it, in enters it.
func (w *Weak) Roll(out, in byte) {
	w.a = (w.a - uint32(out) + uint32(in)) & 0xffff
	w.b = (w.b - w.n*uint32(out) + w.a) & 0xffff
}

// Sum returns the checksum.
func (w *Weak) Sum() uint32 { return w.a | w.b<<16 }

// WeakSum returns the rolling checksum of p.
func WeakSum(p []byte) uint32 {
	var w Weak
	w.Reset(p)
	return w.Sum()
}

// StrongSum returns the strong checksum of p.
func StrongSum(p []byte) (s [wire.StrongLen]byte) {
	h := sha256.Sum256(p)
	copy(s[:], h[:])
	return s
}

// Sign reads the basis from r and returns its checksums in blocks of
// blockSize bytes (the last one may be shorter).
func Sign(r io.Reader, blockSize int) ([]wire.Block, error) {
	var out []wire.Block
	buf := make([]byte, blockSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			out = append(out, wire.Block{Weak: WeakSum(buf[:n]), Strong: StrongSum(buf[:n])})
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading basis: %w", err)
		}
	}
}

// Sink receives the instructions Diff emits, in order.
type Sink interface {
	// Copy appends count blocks of the basis, starting at block index.
	Copy(index, count uint64) error
	// Literal appends data, which is only valid during the call.
	Literal(data []byte) error
}

// Result sums up a Diff.
type Result struct {
	// Sum is the SHA-256 of the new content.
	Sum [32]byte
	// Size is the new content's length.
	Size int64
	// Literal and Matched count the bytes sent and the bytes copied from
	// the basis.
	Literal, Matched int64
}

// table finds blocks by weak checksum.
type table struct {
	blocks []wire.Block
	filter []uint64 // one bit per weak sum hash
	mask   uint32
	byWeak map[uint32][]int32
}

func newTable(blocks []wire.Block) *table {
	bits := uint32(1 << 10)
	for bits < uint32(len(blocks))*8 && bits < 1<<24 {
		bits <<= 1
	}
	t := &table{blocks: blocks, filter: make([]uint64, bits/64), mask: bits - 1, byWeak: make(map[uint32][]int32, len(blocks))}
	seen := make(map[wire.Block]bool, len(blocks))
	for i, b := range blocks {
		if seen[b] {
			continue // identical blocks: the first one serves
		}
		seen[b] = true
		h := mix(b.Weak) & t.mask
		t.filter[h/64] |= 1 << (h % 64)
		t.byWeak[b.Weak] = append(t.byWeak[b.Weak], int32(i))
	}
	return t
}

func mix(w uint32) uint32 { return (w * 0x9e3779b1) >> 7 }

// find returns the index of a block matching window, preferring want (the
// block after the last match), or -1.
func (t *table) find(weak uint32, window []byte, want int) int {
	h := mix(weak) & t.mask
	if t.filter[h/64]&(1<<(h%64)) == 0 {
		return -1
	}
	cands := t.byWeak[weak]
	if len(cands) == 0 {
		return -1
	}
	strong := StrongSum(window)
	if want >= 0 && want < len(t.blocks) && t.blocks[want].Weak == weak && t.blocks[want].Strong == strong {
		return want
	}
	for _, i := range cands {
		if t.blocks[i].Strong == strong {
			return int(i)
		}
	}
	return -1
}

// Diff reads the new content from r and emits to sink how to rebuild it
// from a basis whose checksums, in blocks of blockSize bytes, are blocks.
// With no blocks the content goes out as literals.
func Diff(r io.Reader, blockSize int, blocks []wire.Block, sink Sink) (Result, error) {
	var b Buffers
	return b.Diff(r, blockSize, blocks, sink)
}

// Buffers lets a sender reuse Diff's buffers from one file to the next.
// The zero value is ready to use; it is not safe for concurrent use.
type Buffers struct {
	buf []byte
}

func (b *Buffers) get(n int) []byte {
	if cap(b.buf) < n {
		b.buf = make([]byte, n)
	}
	return b.buf[:n]
}

// Diff is the package's Diff with the buffers of b.
func (b *Buffers) Diff(r io.Reader, blockSize int, blocks []wire.Block, sink Sink) (Result, error) {
	d := differ{r: r, sink: sink, h: sha256.New(), bs: blockSize, bufs: b}
	if len(blocks) == 0 {
		return d.literalOnly()
	}
	if blockSize <= 0 || blockSize > wire.MaxPayload {
		return Result{}, fmt.Errorf("block size %d out of range", blockSize)
	}
	d.t = newTable(blocks)
	return d.run()
}

type differ struct {
	r    io.Reader
	sink Sink
	h    hash.Hash
	res  Result
	bs   int
	t    *table
	bufs *Buffers

	copyStart, copyCount uint64 // pending run of copies
}

func (d *differ) literalOnly() (Result, error) {
	buf := d.bufs.get(LiteralChunk)
	for {
		n, err := io.ReadFull(d.r, buf)
		if n > 0 {
			d.h.Write(buf[:n])
			d.res.Size += int64(n)
			d.res.Literal += int64(n)
			if err := d.sink.Literal(buf[:n]); err != nil {
				return d.res, err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return d.res, fmt.Errorf("reading new content: %w", err)
		}
	}
	d.h.Sum(d.res.Sum[:0])
	return d.res, nil
}

func (d *differ) flushCopy() error {
	if d.copyCount == 0 {
		return nil
	}
	err := d.sink.Copy(d.copyStart, d.copyCount)
	d.copyCount = 0
	return err
}

func (d *differ) literal(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if err := d.flushCopy(); err != nil {
		return err
	}
	d.res.Literal += int64(len(p))
	for len(p) > 0 {
		n := min(len(p), LiteralChunk)
		if err := d.sink.Literal(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (d *differ) copyBlock(i int, n int) error {
	d.res.Matched += int64(n)
	if d.copyCount > 0 && d.copyStart+d.copyCount == uint64(i) && (d.copyCount+1)*uint64(d.bs) <= maxCopyRun {
		d.copyCount++
		return nil
	}
	if err := d.flushCopy(); err != nil {
		return err
	}
	d.copyStart, d.copyCount = uint64(i), 1
	return nil
}

// run is the rolling search. buf[lit:pos] is pending literal data,
// buf[pos:pos+bs] the window, buf[:end] what has been read.
func (d *differ) run() (Result, error) {
	bs := d.bs
	lastBlock := len(d.t.blocks) - 1
	buf := d.bufs.get(LiteralChunk + 2*bs + 256<<10)
	lit, pos, end := 0, 0, 0
	eof := false
	var w Weak
	hashed := false
	next := -1 // the block after the last match
	for {
		if end-pos <= bs && !eof {
			// Keep the pending literal and the window, read more.
			if pos-lit >= LiteralChunk/2 {
				if err := d.literal(buf[lit:pos]); err != nil {
					return d.res, err
				}
				lit = pos
			}
			copy(buf, buf[lit:end])
			pos, end = pos-lit, end-lit
			lit = 0
			for end-pos <= bs && !eof {
				n, err := d.r.Read(buf[end:])
				if n > 0 {
					d.h.Write(buf[end : end+n])
					d.res.Size += int64(n)
					end += n
				}
				if err == io.EOF {
					eof = true
				} else if err != nil {
					return d.res, fmt.Errorf("reading new content: %w", err)
				}
			}
			continue
		}
		n := min(bs, end-pos)
		if n == 0 {
			break
		}
		if n < bs {
			// The tail: it can only match the basis's last block.
			if i := d.t.find(WeakSum(buf[pos:end]), buf[pos:end], lastBlock); i == lastBlock {
				if err := d.literal(buf[lit:pos]); err != nil {
					return d.res, err
				}
				if err := d.copyBlock(i, n); err != nil {
					return d.res, err
				}
				lit = end
			}
			pos = end
			break
		}
		if !hashed {
			w.Reset(buf[pos : pos+bs])
			hashed = true
		}
		// A full window matching a shorter last block is a strong-sum
		// collision; the whole-file sum catches the wrong content.
		if i := d.t.find(w.Sum(), buf[pos:pos+bs], next); i >= 0 {
			if err := d.literal(buf[lit:pos]); err != nil {
				return d.res, err
			}
			if err := d.copyBlock(i, bs); err != nil {
				return d.res, err
			}
			pos += bs
			lit = pos
			hashed = false
			next = i + 1
			continue
		}
		if pos+bs >= end {
			if eof {
				pos = end // no byte left to roll in: the rest is literal
				break
			}
			continue // read the next byte
		}
		w.Roll(buf[pos], buf[pos+bs])
		pos++
		if pos-lit >= LiteralChunk {
			if err := d.literal(buf[lit:pos]); err != nil {
				return d.res, err
			}
			lit = pos
		}
	}
	if err := d.literal(buf[lit:pos]); err != nil {
		return d.res, err
	}
	if err := d.flushCopy(); err != nil {
		return d.res, err
	}
	d.h.Sum(d.res.Sum[:0])
	return d.res, nil
}

// Errors of Patcher.
var (
	ErrBadCopy  = errors.New("copy outside the basis")
	ErrTooLarge = errors.New("content larger than announced")
)

// Patcher rebuilds new content from a basis and Diff's instructions,
// writing it to w and hashing it. It implements Sink.
type Patcher struct {
	w         io.Writer
	basis     io.ReaderAt
	basisSize int64
	bs        int64
	limit     int64
	n         int64
	h         hash.Hash
	buf       []byte
}

// NewPatcher returns a Patcher writing to w, copying blocks of blockSize
// bytes from basis (basisSize bytes long), and refusing to write more than
// limit bytes.
func NewPatcher(w io.Writer, basis io.ReaderAt, basisSize int64, blockSize int, limit int64) *Patcher {
	return &Patcher{w: w, basis: basis, basisSize: basisSize, bs: int64(blockSize), limit: limit, h: sha256.New()}
}

// Copy appends count blocks of the basis starting at block index.
func (p *Patcher) Copy(index, count uint64) error {
	if p.basis == nil || p.bs <= 0 || count == 0 {
		return ErrBadCopy
	}
	nblocks := uint64((p.basisSize + p.bs - 1) / p.bs)
	if index >= nblocks || count > nblocks-index {
		return fmt.Errorf("%w: blocks %d+%d of %d", ErrBadCopy, index, count, nblocks)
	}
	off := int64(index) * p.bs
	n := min(int64(count)*p.bs, p.basisSize-off)
	if p.n+n > p.limit {
		return ErrTooLarge
	}
	if p.buf == nil {
		p.buf = make([]byte, 256<<10)
	}
	for n > 0 {
		chunk := p.buf[:min(n, int64(len(p.buf)))]
		if _, err := p.basis.ReadAt(chunk, off); err != nil {
			return fmt.Errorf("reading basis at %d: %w", off, err)
		}
		if err := p.write(chunk); err != nil {
			return err
		}
		off += int64(len(chunk))
		n -= int64(len(chunk))
	}
	return nil
}

// Literal appends data.
func (p *Patcher) Literal(data []byte) error {
	if p.n+int64(len(data)) > p.limit {
		return ErrTooLarge
	}
	return p.write(data)
}

func (p *Patcher) write(b []byte) error {
	p.h.Write(b)
	p.n += int64(len(b))
	if _, err := p.w.Write(b); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	return nil
}

// Size returns the bytes written so far.
func (p *Patcher) Size() int64 { return p.n }

// Sum returns the SHA-256 of what was written.
func (p *Patcher) Sum() (s [32]byte) {
	p.h.Sum(s[:0])
	return s
}
