package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unsafe"
)

// Options tune Write. The zero value is valid.
type Options struct {
	// ChunkSize is the size of each write and of each hashed piece, a
	// multiple of 64 KiB; 0 means DefaultChunkSize.
	ChunkSize int64
	// Progress, when set, is called after every chunk of each phase.
	Progress func(Progress)
	// Now is the clock for elapsed times; nil means time.Now.
	Now func() time.Time
	// WriteZeros writes all-zero pieces like any data even where the target
	// could make them zero otherwise (to measure how a card whose reader
	// offloads nothing behaves).
	WriteZeros bool
	// ReadBack, when set, wraps the reader that verification reads the
	// target through. Tests use it to inject faults.
	ReadBack func(io.ReaderAt) io.ReaderAt
}

// DefaultChunkSize is the write size: large, and a multiple of the 4 MiB
// erase blocks SD cards are built around.
const DefaultChunkSize = 4 << 20

// subBlock is the granularity at which zero bytes are found.
const subBlock = 64 << 10

// Phases of Write, as Progress names them.
const (
	PhaseWrite  = "write"
	PhaseVerify = "verify"
)

// Progress reports how far Write has come.
type Progress struct {
	Phase       string
	Done, Total int64 // bytes
	Elapsed     time.Duration
}

// Rate returns the average rate of the phase so far in bytes per second.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// ETA estimates the time left in the phase at the average rate; 0 when unknown.
func (p Progress) ETA() time.Duration {
	r := p.Rate()
	if r <= 0 || p.Done >= p.Total {
		return 0
	}
	return time.Duration(float64(p.Total-p.Done) / r * float64(time.Second))
}

// Result says what Write did.
type Result struct {
	// Bytes is what the card had to hold (the image's Extents, aligned):
	// written, zeroed and verified.
	Bytes int64
	// Written is the part written as data; Zeroed the all-zero part left to
	// the kernel (BLKZEROOUT) or to a fresh file that reads zeros.
	Written, Zeroed int64
	// Skipped is the part of the image not written at all: free blocks of
	// the data partition.
	Skipped int64
	// Digest is the SHA-256 of the per-chunk SHA-256 sums, in order.
	Digest [32]byte
	// WriteTime includes the final sync; VerifyTime the read-back.
	WriteTime, VerifyTime time.Duration
}

// InterruptedError says Write stopped before the card held the image.
type InterruptedError struct {
	Path        string
	Phase       string
	Done, Total int64
	Err         error
}

func (e *InterruptedError) Error() string {
	if e.Phase == PhaseVerify {
		return fmt.Sprintf("verifying %s stopped after %d of %d MiB (%v): the card was written but is NOT verified; flash it again",
			e.Path, e.Done>>20, e.Total>>20, e.Err)
	}
	return fmt.Sprintf("writing %s stopped after %d of %d MiB (%v): the card holds a partial image with a blank partition table and will not boot; flash it again",
		e.Path, e.Done>>20, e.Total>>20, e.Err)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// VerifyError says the read-back differs from the image.
type VerifyError struct {
	Path      string
	Offset    int64
	Want, Got byte
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("verifying %s: byte %d (%d MiB in) reads %#02x but the image has %#02x: the card does not hold the image; try again, then another card or reader",
		e.Path, e.Offset, e.Offset>>20, e.Got, e.Want)
}

// chunk is one piece of the card, written and hashed as a unit.
type chunk struct {
	off, n int64
	sum    [32]byte
}

// Write puts img on t, syncs, then reads every written byte back (past the
// page cache) and compares it with the image by SHA-256 of each chunk.
// It returns an error unless the card verified; a cancelled ctx gives an
// *InterruptedError, a mismatch a *VerifyError.
//
// The card gets img.Extents(), rounded out to the target's block size, in
// chunks of Options.ChunkSize. The first chunk (partition table and boot
// sector) is blanked first and written last, so a card whose write stops
// has no partition table rather than a plausible one. All-zero 64 KiB
// pieces are not written where the target can do better: a fresh file
// already reads zeros; a device whose queue offloads write-zeroes gets
// BLKZEROOUT. Everywhere else zeros are written like any data.
func Write(ctx context.Context, img *Image, t *Target, o Options) (*Result, error) {
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize%subBlock != 0 || o.ChunkSize <= 0 {
		return nil, fmt.Errorf("chunk size %d is not a positive multiple of 64 KiB", o.ChunkSize)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if img.Size() > t.Size {
		return nil, fmt.Errorf("the image (%d bytes) is larger than %s (%d bytes)", img.Size(), t.Path, t.Size)
	}
	chunks := splitChunks(alignExtents(img.Extents(), t.align, t.Size), o.ChunkSize)
	res := &Result{}
	for _, c := range chunks {
		res.Bytes += c.n
	}
	res.Skipped = max(0, img.Size()-res.Bytes)
	if o.WriteZeros && t.zero == zeroOut {
		t.zero = zeroWrite
	}
	w := &writer{img: img, t: t, o: o, res: res, chunks: chunks}
	start := o.Now()
	if err := w.write(ctx); err != nil {
		return nil, err
	}
	res.WriteTime = o.Now().Sub(start)
	start = o.Now()
	if err := w.verify(ctx); err != nil {
		return nil, err
	}
	res.VerifyTime = o.Now().Sub(start)
	h := sha256.New()
	for _, c := range chunks {
		h.Write(c.sum[:])
	}
	copy(res.Digest[:], h.Sum(nil))
	t.rereadPartitions()
	return res, nil
}

// alignExtents rounds every extent out to multiples of align, clipped to
// limit, and merges the ones that then touch.
func alignExtents(ext []Extent, align, limit int64) []Extent {
	var out []Extent
	for _, e := range ext {
		lo := e.Offset / align * align
		hi := min((e.End()+align-1)/align*align, limit)
		out = addExtent(out, Extent{lo, hi - lo})
	}
	return out
}

// splitChunks cuts extents at multiples of size.
func splitChunks(ext []Extent, size int64) []chunk {
	var out []chunk
	for _, e := range ext {
		for off := e.Offset; off < e.End(); {
			end := min((off/size+1)*size, e.End())
			out = append(out, chunk{off: off, n: end - off})
			off = end
		}
	}
	return out
}

type writer struct {
	img    *Image
	t      *Target
	o      Options
	res    *Result
	chunks []chunk
}

// write writes every chunk, the first ones last, then syncs.
func (w *writer) write(ctx context.Context) error {
	var order []int
	var head []int
	for i, c := range w.chunks {
		if c.off < w.o.ChunkSize {
			head = append(head, i)
		} else {
			order = append(order, i)
		}
	}
	order = append(order, head...)
	if w.t.zero != zeroSkip && len(w.chunks) > 0 {
		n := min(max(4096, w.t.align), w.t.Size)
		if _, err := w.t.WriteAt(alignedBuf(n), 0); err != nil {
			return fmt.Errorf("blanking the partition table of %s: %w", w.t.Path, err)
		}
		if err := w.t.f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", w.t.Path, err)
		}
	}
	p := Progress{Phase: PhaseWrite, Total: w.res.Bytes}
	start := w.o.Now()
	produce := func(i int, buf []byte) error {
		c := &w.chunks[i]
		if err := w.readImage(buf, c.off); err != nil {
			return err
		}
		c.sum = sha256.Sum256(buf)
		return nil
	}
	consume := func(i int, buf []byte) error {
		c := w.chunks[i]
		if err := w.writeChunk(buf, c.off); err != nil {
			return err
		}
		p.Done += c.n
		p.Elapsed = w.o.Now().Sub(start)
		if w.o.Progress != nil {
			w.o.Progress(p)
		}
		return nil
	}
	if err := pipeline(ctx, w.chunks, order, w.o.ChunkSize, produce, consume); err != nil {
		if ctx.Err() != nil {
			return &InterruptedError{Path: w.t.Path, Phase: PhaseWrite, Done: p.Done, Total: p.Total, Err: err}
		}
		return err
	}
	if err := w.t.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", w.t.Path, err)
	}
	return nil
}

// readImage fills buf from the image at off; past its end it reads zeros.
func (w *writer) readImage(buf []byte, off int64) error {
	n, err := w.img.ReadAt(buf, off)
	if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) >= w.img.Size()) {
		return fmt.Errorf("reading the image at %d: %w", off, err)
	}
	clear(buf[n:])
	return nil
}

// writeChunk writes buf at off, leaving all-zero pieces to the target when
// it can make them zero without writing them.
func (w *writer) writeChunk(buf []byte, off int64) error {
	if w.t.zero == zeroWrite {
		w.res.Written += int64(len(buf))
		return w.t.writeFull(buf, off)
	}
	for i := 0; i < len(buf); {
		zero := isZero(buf[i:min(i+subBlock, len(buf))])
		j := i
		for j < len(buf) && isZero(buf[j:min(j+subBlock, len(buf))]) == zero {
			j = min(j+subBlock, len(buf))
		}
		if zero {
			w.res.Zeroed += int64(j - i)
			if err := w.t.zeroRange(off+int64(i), int64(j-i)); err != nil {
				return err
			}
		} else {
			w.res.Written += int64(j - i)
			if err := w.t.writeFull(buf[i:j], off+int64(i)); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// verify reads every chunk back and compares its hash.
func (w *writer) verify(ctx context.Context) error {
	r, closeFn, err := w.t.readBack()
	if err != nil {
		return err
	}
	defer closeFn()
	if w.o.ReadBack != nil {
		r = w.o.ReadBack(r)
	}
	order := make([]int, len(w.chunks))
	for i := range order {
		order[i] = i
	}
	p := Progress{Phase: PhaseVerify, Total: w.res.Bytes}
	start := w.o.Now()
	produce := func(i int, buf []byte) error {
		c := w.chunks[i]
		if n, err := r.ReadAt(buf, c.off); err != nil && !(errors.Is(err, io.EOF) && n == len(buf)) {
			return fmt.Errorf("reading %s back at %d: %w", w.t.Path, c.off, err)
		}
		return nil
	}
	consume := func(i int, buf []byte) error {
		c := w.chunks[i]
		if sha256.Sum256(buf) != c.sum {
			return w.mismatch(buf, c)
		}
		p.Done += c.n
		p.Elapsed = w.o.Now().Sub(start)
		if w.o.Progress != nil {
			w.o.Progress(p)
		}
		return nil
	}
	if err := pipeline(ctx, w.chunks, order, w.o.ChunkSize, produce, consume); err != nil {
		if ctx.Err() != nil {
			return &InterruptedError{Path: w.t.Path, Phase: PhaseVerify, Done: p.Done, Total: p.Total, Err: err}
		}
		return err
	}
	return nil
}

// mismatch finds the first byte of chunk c that got differs from the image.
func (w *writer) mismatch(got []byte, c chunk) error {
	want := make([]byte, c.n)
	if err := w.readImage(want, c.off); err != nil {
		return err
	}
	for i := range want {
		if want[i] != got[i] {
			return &VerifyError{Path: w.t.Path, Offset: c.off + int64(i), Want: want[i], Got: got[i]}
		}
	}
	return fmt.Errorf("verifying %s: chunk at %d differs from its hash but not from the image: the image file changed while flashing", w.t.Path, c.off)
}

// pipeline runs produce for the chunks in order in one goroutine and
// consume for each in the caller's, with three buffers in flight, stopping
// at the first error or when ctx is done.
func pipeline(ctx context.Context, chunks []chunk, order []int, bufSize int64,
	produce, consume func(i int, buf []byte) error) error {
	type item struct {
		i   int
		buf []byte
		err error
	}
	const inFlight = 3
	free := make(chan []byte, inFlight)
	for range inFlight {
		free <- alignedBuf(bufSize)
	}
	full := make(chan item, inFlight)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(full)
		for _, i := range order {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			b = b[:chunks[i].n]
			err := produce(i, b)
			select {
			case full <- item{i, b, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	for it := range full {
		if it.err != nil {
			return it.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := consume(it.i, it.buf); err != nil {
			return err
		}
		free <- it.buf[:cap(it.buf)]
	}
	return ctx.Err()
}

// alignedBuf returns n zero bytes starting at a 4 KiB-aligned address, as
// O_DIRECT needs.
func alignedBuf(n int64) []byte {
	const a = 4096
	b := make([]byte, n+a)
	off := 0
	if r := int(addrOf(b) % a); r != 0 {
		off = a - r
	}
	return b[off : off+int(n) : off+int(n)]
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	return len(b) == 0 || (b[0] == 0 && bytes.Equal(b[1:], zeroPage[:len(b)-1]))
}

// zeroPage is compared against; it is never written.
var zeroPage = make([]byte, subBlock)
