package ota

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The payload stream carries one slot to a node, signature first, so the
// node can refuse it before writing anything:
//
//	magic       8 bytes  "PIOTA\x00\x01\n"
//	manifest    uint32 big-endian length, then the manifest bytes
//	signature   uint32 big-endian length, then the signature bytes
//	parts       for the root, then each of Manifest.Files in order:
//	            'I' then exactly Size bytes (inline), or
//	            'H' alone (the node has these bytes: it copies them from
//	            a slot of its own and checks the hash), or, for the root
//	            only, 'D' then one record per ChunkSize chunk of the root:
//	              'C' and a uint32 big-endian index: the bytes of that
//	                  chunk of the node's running root (Reader.Base)
//	              'I' and the chunk's bytes (ChunkSize, or what is left
//	                  for the last chunk)
//	trailer     8 bytes  "PIOTAEND"
//
// The hashes are in the signed manifest; the stream itself has none: the
// node checks what it rebuilt against the manifest, so a wrong copy
// fails like wrong bytes.
const (
	streamMagic   = "PIOTA\x00\x01\n"
	streamTrailer = "PIOTAEND"
	partInline    = 'I'
	partHave      = 'H'
	partDelta     = 'D'
	chunkCopy     = 'C'
	chunkInline   = 'I'
)

// ChunkSize is the unit of a root delta: the root is compared with the
// node's running root in chunks of this size.
const ChunkSize = 64 << 10

// Entry is one part of a payload stream.
type Entry struct {
	// Index is 0 for the root, i+1 for Manifest.Files[i].
	Index int
	// Path is the slot file's path; "" for the root.
	Path   string
	Size   int64
	SHA256 Digest
	// Inline says Data carries the bytes; otherwise the sender expects
	// the node to have them.
	Inline bool
	// Delta says Data rebuilds the bytes from the stream's chunks and
	// Reader.Base (Inline is false).
	Delta bool
	// Data reads exactly Size bytes when Inline; it is valid until the
	// next call of Next.
	Data io.Reader
}

// Reader reads a payload stream.
type Reader struct {
	br *bufio.Reader
	// ManifestBytes are the signed bytes; Manifest is their parse.
	ManifestBytes []byte
	Manifest      *Manifest
	Signature     Signature
	// Base is the node's running root, read for the chunks a root delta
	// copies. Set it before reading a delta part.
	Base io.ReaderAt
	// Received and Copied count the bytes of parts read so far by where
	// they came from: the stream, or Base (delta chunks).
	Received, Copied int64
	next             int
	cur              io.Reader
	done             bool
}

// NewReader reads the stream's header, manifest and signature, and checks
// that the manifest is well formed. It does not verify the signature: the
// caller must call Verify before trusting anything in the manifest.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(streamMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("reading the payload header: %w", err)
	}
	if string(magic) != streamMagic {
		return nil, errors.New("reading the payload header: not a piimage update payload (bad magic)")
	}
	mb, err := readBlock(br, "manifest", MaxManifestSize)
	if err != nil {
		return nil, err
	}
	sb, err := readBlock(br, "signature", MaxSignatureSize)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(mb)
	if err != nil {
		return nil, err
	}
	sig, err := ParseSignature(sb)
	if err != nil {
		return nil, err
	}
	return &Reader{br: br, ManifestBytes: mb, Manifest: m, Signature: sig}, nil
}

func readBlock(r io.Reader, what string, max int) ([]byte, error) {
	var n uint32
	if err := binary.Read(r, binary.BigEndian, &n); err != nil {
		return nil, fmt.Errorf("reading the payload's %s length: %w", what, noEOF(err))
	}
	if int64(n) > int64(max) {
		return nil, fmt.Errorf("reading the payload's %s: %d bytes, more than %d", what, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading the payload's %s: %w", what, noEOF(err))
	}
	return b, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Next returns the next part, skipping what the caller left unread of the
// previous one. After the last part it checks the trailer and returns
// io.EOF.
func (r *Reader) Next() (Entry, error) {
	if r.cur != nil {
		if _, err := io.Copy(io.Discard, r.cur); err != nil {
			return Entry{}, fmt.Errorf("reading the payload: %w", noEOF(err))
		}
		r.cur = nil
	}
	if r.done {
		return Entry{}, io.EOF
	}
	if r.next > len(r.Manifest.Files) {
		t := make([]byte, len(streamTrailer))
		if _, err := io.ReadFull(r.br, t); err != nil {
			return Entry{}, fmt.Errorf("reading the payload trailer: %w", noEOF(err))
		}
		if string(t) != streamTrailer {
			return Entry{}, errors.New("reading the payload trailer: bad trailer (the stream has more parts than the manifest)")
		}
		r.done = true
		return Entry{}, io.EOF
	}
	e := Entry{Index: r.next, Size: r.Manifest.Root.Size, SHA256: r.Manifest.Root.SHA256}
	if r.next > 0 {
		f := r.Manifest.Files[r.next-1]
		e.Path, e.Size, e.SHA256 = f.Path, f.Size, f.SHA256
	}
	r.next++
	kind, err := r.br.ReadByte()
	if err != nil {
		return Entry{}, fmt.Errorf("reading the payload (part %d): %w", e.Index, noEOF(err))
	}
	switch kind {
	case partInline:
		e.Inline = true
		r.cur = &countReader{r: eofStrict{&io.LimitedReader{R: r.br, N: e.Size}}, n: &r.Received}
		e.Data = r.cur
	case partHave:
		e.Data = eofStrict{&io.LimitedReader{}}
	case partDelta:
		if e.Index != 0 {
			return Entry{}, fmt.Errorf("reading the payload (part %d): a delta is only for the root", e.Index)
		}
		e.Delta = true
		r.cur = &deltaReader{r: r, left: e.Size}
		e.Data = r.cur
	default:
		return Entry{}, fmt.Errorf("reading the payload (part %d): unknown part kind %q", e.Index, kind)
	}
	return e, nil
}

// eofStrict turns a short part (the stream ended early) into
// io.ErrUnexpectedEOF instead of a clean end.
type eofStrict struct{ l *io.LimitedReader }

func (e eofStrict) Read(p []byte) (int, error) {
	if e.l.N <= 0 {
		return 0, io.EOF
	}
	n, err := e.l.Read(p)
	if err == io.EOF && e.l.N > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// countReader counts what it reads into *n.
type countReader struct {
	r io.Reader
	n *int64
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	*c.n += int64(k)
	return k, err
}

// deltaReader rebuilds a root from its delta records.
type deltaReader struct {
	r    *Reader
	left int64  // bytes of the root still to produce
	buf  []byte // the current chunk's unread bytes
}

func (d *deltaReader) Read(p []byte) (int, error) {
	if len(d.buf) == 0 {
		if d.left == 0 {
			return 0, io.EOF
		}
		if err := d.chunk(); err != nil {
			return 0, err
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

// chunk reads the next record.
func (d *deltaReader) chunk() error {
	n := min(int64(ChunkSize), d.left)
	kind, err := d.r.br.ReadByte()
	if err != nil {
		return fmt.Errorf("reading the root delta: %w", noEOF(err))
	}
	buf := make([]byte, n)
	switch kind {
	case chunkInline:
		if _, err := io.ReadFull(d.r.br, buf); err != nil {
			return fmt.Errorf("reading the root delta: %w", noEOF(err))
		}
		d.r.Received += n
	case chunkCopy:
		var idx uint32
		if err := binary.Read(d.r.br, binary.BigEndian, &idx); err != nil {
			return fmt.Errorf("reading the root delta: %w", noEOF(err))
		}
		if d.r.Base == nil {
			return errors.New("reading the root delta: a chunk copy, but no running root to copy from")
		}
		if _, err := d.r.Base.ReadAt(buf, int64(idx)*ChunkSize); err != nil {
			return fmt.Errorf("reading the root delta: copying chunk %d of the running root: %w", idx, err)
		}
		d.r.Copied += n
	default:
		return fmt.Errorf("reading the root delta: unknown record %q", kind)
	}
	d.left -= n
	d.buf = buf
	return nil
}

// ChunkHashes returns the SHA-256 of each ChunkSize chunk of the first
// size bytes of r (the last chunk may be shorter): what a sender needs to
// make a root delta against r.
func ChunkHashes(r io.ReaderAt, size int64) ([]Digest, error) {
	var out []Digest
	buf := make([]byte, ChunkSize)
	for off := int64(0); off < size; off += ChunkSize {
		b := buf[:min(int64(ChunkSize), size-off)]
		if _, err := r.ReadAt(b, off); err != nil {
			return nil, fmt.Errorf("reading chunk %d: %w", off/ChunkSize, err)
		}
		out = append(out, sha256.Sum256(b))
	}
	return out, nil
}

// Writer writes a payload stream.
type Writer struct {
	w    io.Writer
	m    *Manifest
	next int
}

// NewWriter writes the header, the manifest bytes and the signature.
func NewWriter(w io.Writer, manifest []byte, sig Signature) (*Writer, error) {
	m, err := ParseManifest(manifest)
	if err != nil {
		return nil, err
	}
	sb := sig.Marshal()
	hdr := make([]byte, 0, len(streamMagic)+8+len(manifest)+len(sb))
	hdr = append(hdr, streamMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(manifest)))
	hdr = append(hdr, manifest...)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(sb)))
	hdr = append(hdr, sb...)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("writing the payload header: %w", err)
	}
	return &Writer{w: w, m: m}, nil
}

// Manifest returns the parsed manifest the writer sends.
func (w *Writer) Manifest() *Manifest { return w.m }

// Inline writes the next part's bytes, read from r, which must hold
// exactly the part's size.
func (w *Writer) Inline(r io.Reader) error {
	size, name, err := w.advance()
	if err != nil {
		return err
	}
	if _, err := w.w.Write([]byte{partInline}); err != nil {
		return err
	}
	n, err := io.Copy(w.w, io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("sending %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("sending %s: %d bytes, the manifest says %d", name, n, size)
	}
	return nil
}

// Delta writes the root (the first part, read from r) as chunks: each
// chunk whose hash base lists is sent as a copy of that chunk of the
// node's running root, the others inline. It returns the bytes sent
// inline.
func (w *Writer) Delta(r io.Reader, base []Digest) (int64, error) {
	if w.next != 0 {
		return 0, errors.New("writing the payload: only the root is sent as a delta")
	}
	size, _, err := w.advance()
	if err != nil {
		return 0, err
	}
	index := map[Digest]uint32{}
	for i, d := range base {
		if _, ok := index[d]; !ok {
			index[d] = uint32(i)
		}
	}
	if _, err := w.w.Write([]byte{partDelta}); err != nil {
		return 0, err
	}
	buf := make([]byte, ChunkSize)
	var sent int64
	for left := size; left > 0; {
		b := buf[:min(int64(ChunkSize), left)]
		if _, err := io.ReadFull(r, b); err != nil {
			return sent, fmt.Errorf("sending the root filesystem: %w", noEOF(err))
		}
		if i, ok := index[sha256.Sum256(b)]; ok {
			rec := binary.BigEndian.AppendUint32([]byte{chunkCopy}, i)
			if _, err := w.w.Write(rec); err != nil {
				return sent, err
			}
		} else {
			if _, err := w.w.Write([]byte{chunkInline}); err != nil {
				return sent, err
			}
			if _, err := w.w.Write(b); err != nil {
				return sent, err
			}
			sent += int64(len(b))
		}
		left -= int64(len(b))
	}
	return sent, nil
}

// Have marks the next part as one the node already has.
func (w *Writer) Have() error {
	if _, _, err := w.advance(); err != nil {
		return err
	}
	_, err := w.w.Write([]byte{partHave})
	return err
}

func (w *Writer) advance() (int64, string, error) {
	if w.next > len(w.m.Files) {
		return 0, "", errors.New("writing the payload: every part is written")
	}
	i := w.next
	w.next++
	if i == 0 {
		return w.m.Root.Size, "the root filesystem", nil
	}
	f := w.m.Files[i-1]
	return f.Size, f.Path, nil
}

// Close writes the trailer; every part must have been written.
func (w *Writer) Close() error {
	if w.next != len(w.m.Files)+1 {
		return fmt.Errorf("writing the payload: %d of %d parts written", w.next, len(w.m.Files)+1)
	}
	_, err := io.WriteString(w.w, streamTrailer)
	return err
}
