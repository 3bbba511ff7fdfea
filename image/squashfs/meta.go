package squashfs

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
)

const (
	metaBlockSize    = 8192   // uncompressed size of a metadata block
	metaUncompressed = 0x8000 // metadata block header bit: stored uncompressed
)

// compressor compresses blocks into zlib streams, reusing its state.
type compressor struct {
	zw  *zlib.Writer
	buf bytes.Buffer
}

func newCompressor(level int) (*compressor, error) {
	c := &compressor{}
	zw, err := zlib.NewWriterLevel(&c.buf, level)
	if err != nil {
		return nil, err
	}
	c.zw = zw
	return c, nil
}

// compress returns p as a zlib stream and whether that is smaller than p.
// The result is only valid until the next call.
func (c *compressor) compress(p []byte) ([]byte, bool) {
	c.buf.Reset()
	c.zw.Reset(&c.buf)
	// Writes to a bytes.Buffer cannot fail.
	_, _ = c.zw.Write(p)
	_ = c.zw.Close()
	out := c.buf.Bytes()
	return out, len(out) < len(p)
}

// metaWriter builds a table of metadata blocks: 8 KiB chunks of a byte
// stream, each stored compressed (or raw when compression does not shrink
// it) behind a 16-bit length header.
type metaWriter struct {
	c      *compressor
	out    []byte   // finished blocks, headers included
	cur    []byte   // bytes of the block being filled
	starts []uint32 // offset in out of each finished block
}

// pos returns the reference of the next byte written: the offset in the
// table of the block holding it, and its offset in that block's data.
func (m *metaWriter) pos() (block uint32, offset uint16) {
	return uint32(len(m.out)), uint16(len(m.cur))
}

// ref returns the next byte's position as an inode reference.
func (m *metaWriter) ref() uint64 {
	b, o := m.pos()
	return uint64(b)<<16 | uint64(o)
}

// abs returns the number of uncompressed bytes written so far.
func (m *metaWriter) abs() int {
	return len(m.starts)*metaBlockSize + len(m.cur)
}

// blockAt returns the table offset of the block holding the uncompressed
// byte at position abs, which must be at most m.abs().
func (m *metaWriter) blockAt(abs int) uint32 {
	if i := abs / metaBlockSize; i < len(m.starts) {
		return m.starts[i]
	}
	return uint32(len(m.out))
}

func (m *metaWriter) write(p []byte) {
	for len(p) > 0 {
		n := min(len(p), metaBlockSize-len(m.cur))
		m.cur = append(m.cur, p[:n]...)
		p = p[n:]
		if len(m.cur) == metaBlockSize {
			m.flush()
		}
	}
}

// flush finishes the block being filled, if it holds anything.
func (m *metaWriter) flush() {
	if len(m.cur) == 0 {
		return
	}
	m.starts = append(m.starts, uint32(len(m.out)))
	z, smaller := m.c.compress(m.cur)
	if smaller {
		m.out = binary.LittleEndian.AppendUint16(m.out, uint16(len(z)))
		m.out = append(m.out, z...)
	} else {
		m.out = binary.LittleEndian.AppendUint16(m.out, uint16(len(m.cur))|metaUncompressed)
		m.out = append(m.out, m.cur...)
	}
	m.cur = m.cur[:0]
}

// bytes finishes the table and returns it.
func (m *metaWriter) bytes() []byte {
	m.flush()
	return m.out
}
