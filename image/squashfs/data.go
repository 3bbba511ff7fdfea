package squashfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
)

// Data block size field: bit 24 set means stored uncompressed; a size of 0
// is a hole (a block of zeros that takes no space).
const blockUncompressed = 1 << 24

// fileData is where a regular file's contents went.
type fileData struct {
	size       int64
	start      int64    // image offset of the first stored block
	blocks     []uint32 // size field of each full block (and the short last block of a file larger than a block)
	fragIndex  uint32   // noFragment, or the fragment block holding the file (smaller than a block)
	fragOffset uint32   // offset of the file's bytes in that fragment block
	sparse     int64    // bytes stored as holes
}

// fragEntry is one fragment table entry.
type fragEntry struct {
	start int64
	size  uint32 // with blockUncompressed when stored raw
}

// dataWriter writes file contents to the data area that follows the
// superblock: full blocks as they are read, and files smaller than a block
// packed into shared fragment blocks.
//
// Blocks of one file are compressed in parallel batches and written in
// order, so the output does not depend on scheduling.
type dataWriter struct {
	out       *output
	pos       int64 // next free image offset
	blockSize int
	comps     []*compressor // one per worker
	batch     [][]byte      // read buffers, blockSize each
	zbuf      [][]byte      // compressed results of a batch
	zraw      []bool        // whether zbuf[i] is stored raw
	zeros     []byte
	frag      []byte // fragment block being filled
	frags     []fragEntry
}

func newDataWriter(out *output, start int64, cfg config) (*dataWriter, error) {
	workers := min(runtime.GOMAXPROCS(0), 8)
	d := &dataWriter{out: out, pos: start, blockSize: cfg.blockSize, zeros: make([]byte, cfg.blockSize)}
	for range workers {
		c, err := newCompressor(cfg.level)
		if err != nil {
			return nil, fmt.Errorf("squashfs: compression level %d: %w", cfg.level, err)
		}
		d.comps = append(d.comps, c)
	}
	n := 2 * workers
	d.batch = make([][]byte, n)
	for i := range d.batch {
		d.batch[i] = make([]byte, cfg.blockSize)
	}
	d.zbuf = make([][]byte, n)
	d.zraw = make([]bool, n)
	d.frag = make([]byte, 0, cfg.blockSize)
	return d, nil
}

// writeFile stores the contents read from r and feeds them to h, if not nil.
func (d *dataWriter) writeFile(r io.Reader, h hash.Hash) (*fileData, error) {
	fd := &fileData{start: d.pos, fragIndex: noFragment}
	defer d.restoreBatch()
	for {
		n, short := 0, false
		for n < len(d.batch) && !short {
			k, err := io.ReadFull(r, d.batch[n])
			switch {
			case err == nil:
			case errors.Is(err, io.EOF):
				short = true
				continue
			case errors.Is(err, io.ErrUnexpectedEOF):
				short = true
			default:
				return nil, err
			}
			if h != nil {
				h.Write(d.batch[n][:k])
			}
			d.batch[n] = d.batch[n][:k]
			fd.size += int64(k)
			n++
		}
		blocks := d.batch[:n]
		if fd.size < int64(d.blockSize) {
			// Smaller than a block: the whole file is a fragment.
			if n == 1 {
				fd.fragIndex, fd.fragOffset = d.addFragment(blocks[0])
			}
			return fd, nil
		}
		d.writeBlocks(fd, blocks)
		d.restoreBatch()
		if short {
			return fd, nil
		}
	}
}

// restoreBatch gives the read buffers back their full length.
func (d *dataWriter) restoreBatch() {
	for i := range d.batch {
		d.batch[i] = d.batch[i][:d.blockSize]
	}
}

// writeBlocks compresses blocks in parallel and writes them in order,
// recording their size fields in fd. All-zero blocks become holes.
func (d *dataWriter) writeBlocks(fd *fileData, blocks [][]byte) {
	var wg sync.WaitGroup
	for w, c := range d.comps {
		wg.Go(func() {
			for i := w; i < len(blocks); i += len(d.comps) {
				b := blocks[i]
				if bytes.Equal(b, d.zeros[:len(b)]) {
					d.zbuf[i] = d.zbuf[i][:0]
					continue
				}
				z, smaller := c.compress(b)
				if !smaller {
					z = b
				}
				d.zbuf[i] = append(d.zbuf[i][:0], z...)
				d.zraw[i] = !smaller
			}
		})
	}
	wg.Wait()
	for i, b := range blocks {
		z := d.zbuf[i]
		if len(z) == 0 {
			fd.blocks = append(fd.blocks, 0)
			fd.sparse += int64(len(b))
			continue
		}
		size := uint32(len(z))
		if d.zraw[i] {
			size |= blockUncompressed
		}
		fd.blocks = append(fd.blocks, size)
		d.out.writeAt(z, d.pos)
		d.pos += int64(len(z))
	}
}

// addFragment appends p, shorter than a block, to the fragment block being
// filled, first writing that block out if p does not fit.
func (d *dataWriter) addFragment(p []byte) (index, offset uint32) {
	if len(d.frag)+len(p) > d.blockSize {
		d.flushFragment()
	}
	index, offset = uint32(len(d.frags)), uint32(len(d.frag))
	d.frag = append(d.frag, p...)
	return index, offset
}

// flushFragment writes the fragment block being filled, if any.
func (d *dataWriter) flushFragment() {
	if len(d.frag) == 0 {
		return
	}
	z, smaller := d.comps[0].compress(d.frag)
	e := fragEntry{start: d.pos, size: uint32(len(z))}
	if !smaller {
		z = d.frag
		e.size = uint32(len(z)) | blockUncompressed
	}
	d.out.writeAt(z, d.pos)
	d.pos += int64(len(z))
	d.frags = append(d.frags, e)
	d.frag = d.frag[:0]
}

// dedupKey identifies file contents.
type dedupKey struct {
	size int64
	sum  [sha256.Size]byte
}

// hashReader returns the size and SHA-256 of everything r yields.
func hashReader(r io.Reader) (dedupKey, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return dedupKey{}, err
	}
	k := dedupKey{size: n}
	h.Sum(k.sum[:0])
	return k, nil
}
