// Package wire is the mirror protocol's codec: the frames a primary and its
// replicas exchange over their TLS connection. It opens no sockets.
//
// Every frame is a type byte, the payload's length as a uvarint, and the
// payload. Integers inside payloads are uvarints (signed ones zig-zag
// varints), strings a uvarint length and the bytes. A session runs:
//
//	replica → primary  Hello{Version, Name}
//	primary → replica  Hello{Version, Name}
//	primary → replica  Batch{Reset} … Batch{Final}   the whole tree
//	replica → primary  Request{ID, Path, Sig} …      files it lacks
//	primary → replica  FileHead, Copy/Literal …, FileEnd   one per Request, in order
//	primary → replica  Batch{Final} …                changes as they happen
//	replica → primary  Ack{Gen}                      everything up to Gen applied
//	both ways          Ping                          heartbeat
//	either             Error                         why the sender hangs up
//
// Decoders check every length against what is left of the payload and
// refuse anything malformed; paths are not checked here (that is the
// receiver's job, see mirror's path guard).
package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/klauspost/compress/flate"
	"io"
)

// Version is the protocol version this codec speaks.
const Version = 1

// Limits a decoder enforces.
const (
	// MaxPayload bounds one frame's payload.
	MaxPayload = 4 << 20
	// MaxString bounds a path or symlink target.
	MaxString = 4096
	// MaxInflated bounds a compressed payload once inflated.
	MaxInflated = 16 << 20
	// MaxLiteral bounds the data of one Literal frame, inflated.
	MaxLiteral = 1 << 20
)

// Type is a frame's type byte.
type Type byte

// Frame types.
const (
	THello    Type = 1
	TBatch    Type = 2
	TAck      Type = 3
	TRequest  Type = 4
	TFileHead Type = 5
	TLiteral  Type = 6
	TCopy     Type = 7
	TFileEnd  Type = 8
	TPing     Type = 9
	TError    Type = 10
)

// Msg is one decoded frame.
type Msg interface {
	// Type returns the frame type the message travels in.
	Type() Type
	appendPayload(b []byte) []byte
}

// ErrMalformed is wrapped by every decoding error about a frame's content.
var ErrMalformed = errors.New("malformed frame")

// Hello opens a session in both directions.
type Hello struct {
	Version uint64
	// Name is the sender's hostname.
	Name string
}

// Kind is what a tree entry is.
type Kind byte

// Entry kinds.
const (
	KindDelete  Kind = 'x'
	KindFile    Kind = 'f'
	KindDir     Kind = 'd'
	KindSymlink Kind = 'l'
)

// Item is one entry of a Batch: a path that exists with its metadata, or
// (Kind == KindDelete) a path that no longer exists.
type Item struct {
	Kind Kind
	// Path is relative to the root, elements separated by "/".
	Path string
	// Mode holds the permission bits (and sticky bit), as in fs.FileMode.Perm.
	Mode uint32
	// MtimeNs is the modification time in nanoseconds since 1970.
	MtimeNs int64
	// Size is a file's length.
	Size uint64
	// Target is a symlink's target, verbatim.
	Target string
}

// Batch flags.
const (
	// FlagReset starts a full listing: every path not listed up to the
	// Final batch of the same Gen no longer exists.
	FlagReset = 1 << 0
	// FlagFinal ends generation Gen: the receiver acks it once applied.
	FlagFinal   = 1 << 1
	flagDeflate = 1 << 2
	batchFlags  = FlagReset | FlagFinal | flagDeflate
)

// Batch carries tree entries of generation Gen.
type Batch struct {
	Gen   uint64
	Flags uint64
	Items []Item
}

// Ack says the replica has applied every batch up to Gen.
type Ack struct{ Gen uint64 }

// Block is the checksums of one block of the replica's copy.
type Block struct {
	Weak   uint32
	Strong [StrongLen]byte
}

// StrongLen is the length of a block's strong checksum on the wire.
const StrongLen = 8

// Request asks for the content of Path; Blocks describe the replica's
// current copy (its basis) in blocks of BlockSize bytes, none when it has
// nothing to offer.
type Request struct {
	ID        uint64
	Path      string
	BlockSize uint64
	Blocks    []Block
}

// FileHead starts the answer to Request ID: the metadata of the content
// that follows, or Gone when Path is no longer a regular file.
type FileHead struct {
	ID      uint64
	Gone    bool
	Mode    uint32
	MtimeNs int64
	Size    uint64
}

// Literal is new data of the file being sent. Deflated data must be
// inflated (at most MaxLiteral bytes) before use.
type Literal struct {
	ID       uint64
	Deflated bool
	Data     []byte
}

// Copy says: append Count blocks of the basis starting at block Index.
type Copy struct {
	ID    uint64
	Index uint64
	Count uint64
}

// FileEnd ends the answer to Request ID with the SHA-256 of the content.
type FileEnd struct {
	ID  uint64
	Sum [32]byte
}

// Ping is the heartbeat; its Seq is free for the sender's use.
type Ping struct{ Seq uint64 }

// Error tells the peer why the sender closes the session.
type Error struct{ Msg string }

func (Hello) Type() Type    { return THello }
func (Batch) Type() Type    { return TBatch }
func (Ack) Type() Type      { return TAck }
func (Request) Type() Type  { return TRequest }
func (FileHead) Type() Type { return TFileHead }
func (Literal) Type() Type  { return TLiteral }
func (Copy) Type() Type     { return TCopy }
func (FileEnd) Type() Type  { return TFileEnd }
func (Ping) Type() Type     { return TPing }
func (Error) Type() Type    { return TError }

// Append appends m as one frame to b.
func Append(b []byte, m Msg) []byte {
	p := m.appendPayload(nil)
	b = append(b, byte(m.Type()))
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (m Hello) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, m.Version)
	return appendString(b, m.Name)
}

// batchDeflateMin is the size of encoded items above which a batch is sent
// deflated.
const batchDeflateMin = 256

func (m Batch) appendPayload(b []byte) []byte {
	items := appendItems(nil, m.Items)
	flags := m.Flags &^ flagDeflate
	if len(items) >= batchDeflateMin {
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestSpeed)
		w.Write(items)
		w.Close()
		if z.Len() < len(items) {
			items = z.Bytes()
			flags |= flagDeflate
		}
	}
	b = binary.AppendUvarint(b, m.Gen)
	b = binary.AppendUvarint(b, flags)
	return append(b, items...)
}

// appendItems encodes items, each path as the length it shares with the
// previous path and the rest.
func appendItems(b []byte, items []Item) []byte {
	b = binary.AppendUvarint(b, uint64(len(items)))
	prev := ""
	for _, it := range items {
		n := 0
		for n < len(prev) && n < len(it.Path) && prev[n] == it.Path[n] {
			n++
		}
		b = append(b, byte(it.Kind))
		b = binary.AppendUvarint(b, uint64(n))
		b = appendString(b, it.Path[n:])
		prev = it.Path
		switch it.Kind {
		case KindDelete:
			continue
		case KindFile:
			b = binary.AppendUvarint(b, it.Size)
		case KindSymlink:
			b = appendString(b, it.Target)
		}
		b = binary.AppendUvarint(b, uint64(it.Mode))
		b = binary.AppendVarint(b, it.MtimeNs)
	}
	return b
}

func (m Ack) appendPayload(b []byte) []byte { return binary.AppendUvarint(b, m.Gen) }

func (m Request) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, m.ID)
	b = appendString(b, m.Path)
	b = binary.AppendUvarint(b, m.BlockSize)
	b = binary.AppendUvarint(b, uint64(len(m.Blocks)))
	for _, k := range m.Blocks {
		b = binary.BigEndian.AppendUint32(b, k.Weak)
		b = append(b, k.Strong[:]...)
	}
	return b
}

func (m FileHead) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, m.ID)
	if m.Gone {
		return append(b, 1)
	}
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(m.Mode))
	b = binary.AppendVarint(b, m.MtimeNs)
	return binary.AppendUvarint(b, m.Size)
}

func (m Literal) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, m.ID)
	if m.Deflated {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, m.Data...)
}

func (m Copy) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, m.ID)
	b = binary.AppendUvarint(b, m.Index)
	return binary.AppendUvarint(b, m.Count)
}

func (m FileEnd) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, m.ID)
	return append(b, m.Sum[:]...)
}

func (m Ping) appendPayload(b []byte) []byte  { return binary.AppendUvarint(b, m.Seq) }
func (m Error) appendPayload(b []byte) []byte { return appendString(b, m.Msg) }

// Reader reads frames from a stream.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader returns a Reader reading from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Read reads and decodes the next frame. Messages may refer to the
// Reader's buffer (Literal.Data) until the next Read.
func (r *Reader) Read() (Msg, error) {
	t, err := r.r.ReadByte()
	if err != nil {
		return nil, err
	}
	n, err := binary.ReadUvarint(r.r)
	if err != nil {
		return nil, noEOF(err)
	}
	if n > MaxPayload {
		return nil, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrMalformed, n, MaxPayload)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		return nil, noEOF(err)
	}
	return Decode(Type(t), p)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Decode decodes the payload p of a frame of type t. The message may refer
// to p.
func Decode(t Type, p []byte) (Msg, error) {
	d := &dec{b: p}
	var m Msg
	switch t {
	case THello:
		m = Hello{Version: d.uvarint(), Name: d.str()}
	case TBatch:
		m = d.batch()
	case TAck:
		m = Ack{Gen: d.uvarint()}
	case TRequest:
		m = d.request()
	case TFileHead:
		h := FileHead{ID: d.uvarint()}
		switch d.byte() {
		case 0:
			h.Mode = d.mode()
			h.MtimeNs = d.varint()
			h.Size = d.uvarint()
		case 1:
			h.Gone = true
		default:
			d.fail("bad file head status")
		}
		m = h
	case TLiteral:
		l := Literal{ID: d.uvarint()}
		switch d.byte() {
		case 0:
		case 1:
			l.Deflated = true
		default:
			d.fail("bad literal flag")
		}
		if len(d.b) > MaxLiteral && d.err == nil {
			d.fail("literal too long")
		}
		l.Data, d.b = d.b, nil
		m = l
	case TCopy:
		m = Copy{ID: d.uvarint(), Index: d.uvarint(), Count: d.uvarint()}
	case TFileEnd:
		e := FileEnd{ID: d.uvarint()}
		copy(e.Sum[:], d.take(32))
		m = e
	case TPing:
		m = Ping{Seq: d.uvarint()}
	case TError:
		m = Error{Msg: d.str()}
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, t)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: type %d: %s", ErrMalformed, t, d.err)
	}
	return m, nil
}

func (d *dec) batch() Batch {
	m := Batch{Gen: d.uvarint(), Flags: d.uvarint()}
	if m.Flags&^batchFlags != 0 {
		d.fail("unknown batch flags")
		return m
	}
	if m.Flags&flagDeflate != 0 {
		raw, err := inflate(d.b, MaxInflated)
		if err != nil {
			d.fail(err.Error())
			return m
		}
		d.b = raw
		m.Flags &^= flagDeflate
	}
	n := d.uvarint()
	if n > uint64(len(d.b))/3 { // an item takes at least 3 bytes
		d.fail("too many items")
		return m
	}
	m.Items = make([]Item, 0, n)
	prev := ""
	for i := uint64(0); i < n && d.err == nil; i++ {
		it := Item{Kind: Kind(d.byte())}
		shared := d.uvarint()
		rest := d.str()
		if shared > uint64(len(prev)) || shared+uint64(len(rest)) > MaxString {
			d.fail("bad shared path prefix")
			break
		}
		it.Path = prev[:shared] + rest
		prev = it.Path
		switch it.Kind {
		case KindDelete:
			m.Items = append(m.Items, it)
			continue
		case KindFile:
			it.Size = d.uvarint()
		case KindSymlink:
			it.Target = d.str()
		case KindDir:
		default:
			d.fail("unknown item kind")
		}
		it.Mode = d.mode()
		it.MtimeNs = d.varint()
		m.Items = append(m.Items, it)
	}
	return m
}

func (d *dec) request() Request {
	m := Request{ID: d.uvarint(), Path: d.str(), BlockSize: d.uvarint()}
	n := d.uvarint()
	const blockLen = 4 + StrongLen
	if n > uint64(len(d.b))/blockLen {
		d.fail("too many blocks")
		return m
	}
	if n > 0 && (m.BlockSize == 0 || m.BlockSize > MaxPayload) {
		d.fail("bad block size")
		return m
	}
	m.Blocks = make([]Block, n)
	for i := range m.Blocks {
		b := d.take(blockLen)
		m.Blocks[i].Weak = binary.BigEndian.Uint32(b)
		copy(m.Blocks[i].Strong[:], b[4:])
	}
	return m
}

// dec reads a payload; the first error sticks and later reads return zero.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
	d.b = nil
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) mode() uint32 {
	v := d.uvarint()
	if v > 0o7777 {
		d.fail("bad mode")
		return 0
	}
	return uint32(v)
}

func (d *dec) byte() byte {
	if len(d.b) < 1 {
		d.fail("short payload")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) take(n int) []byte {
	if len(d.b) < n {
		d.fail("short payload")
		return make([]byte, n)
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) str() string {
	n := d.uvarint()
	if n > MaxString || n > uint64(len(d.b)) {
		d.fail("bad string length")
		return ""
	}
	return string(d.take(int(n)))
}

// inflate decompresses deflated data, refusing more than limit bytes.
func inflate(data []byte, limit int) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(data))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("inflating: %w", err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("inflates to more than %d bytes", limit)
	}
	return out, nil
}

// Deflater compresses Literal data, reusing its state between calls.
// The zero value is ready to use.
type Deflater struct {
	w, h *flate.Writer
	buf  bytes.Buffer
}

// Deflate compresses data; ok is false when that does not make it smaller
// by a tenth at least. It tries the fastest LZ level first and, for data
// without repeats (random text), Huffman coding alone. out is valid until
// the next call.
func (z *Deflater) Deflate(data []byte) (out []byte, ok bool) {
	if z.w == nil {
		z.w, _ = flate.NewWriter(&z.buf, flate.BestSpeed)
		z.h, _ = flate.NewWriter(&z.buf, flate.HuffmanOnly)
	}
	for _, w := range []*flate.Writer{z.w, z.h} {
		z.buf.Reset()
		w.Reset(&z.buf)
		w.Write(data)
		w.Close()
		if z.buf.Len() < len(data)-len(data)/10 {
			return z.buf.Bytes(), true
		}
	}
	return nil, false
}

// Inflater decompresses Literal data, reusing its state between calls.
// The zero value is ready to use.
type Inflater struct {
	r   io.ReadCloser
	src bytes.Reader
	out []byte
}

// Inflate decompresses a deflated Literal's data, refusing more than
// MaxLiteral bytes. out is valid until the next call.
func (z *Inflater) Inflate(data []byte) (out []byte, err error) {
	z.src.Reset(data)
	if z.r == nil {
		z.r = flate.NewReader(&z.src)
	} else {
		z.r.(flate.Resetter).Reset(&z.src, nil)
	}
	if cap(z.out) < MaxLiteral+1 {
		z.out = make([]byte, MaxLiteral+1)
	}
	n := 0
	for {
		m, err := z.r.Read(z.out[n : MaxLiteral+1])
		n += m
		if n > MaxLiteral {
			return nil, fmt.Errorf("%w: literal inflates to more than %d bytes", ErrMalformed, MaxLiteral)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: inflating literal: %s", ErrMalformed, err)
		}
	}
	return z.out[:n], nil
}
