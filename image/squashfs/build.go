package squashfs

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
)

const (
	superblockSize = 96
	magic          = 0x73717368 // "hsqs"
	compZlib       = 1          // squashfs "gzip": zlib streams (RFC 1950)
	padTo          = 4096       // mksquashfs pads the image to 4 KiB
	noTable        = math.MaxUint64

	flagDuplicates = 0x0040 // duplicate files were stored once
	flagNoXattrs   = 0x0200
)

// output writes to the caller's WriterAt, keeping every write below the
// size limit and remembering the first error.
type output struct {
	w        io.WriterAt
	max      int64 // 0: no limit
	err      error
	overflow bool // a write would have crossed max; nothing more is written
}

func (o *output) writeAt(p []byte, off int64) {
	if o.err != nil || o.overflow || len(p) == 0 {
		return
	}
	if o.max > 0 && off+int64(len(p)) > o.max {
		o.overflow = true
		return
	}
	if _, err := o.w.WriteAt(p, off); err != nil {
		o.err = fmt.Errorf("squashfs: writing %d bytes at offset %d: %w", len(p), off, err)
	}
}

// builder holds the state of one Write.
type builder struct {
	fsys   fs.FS
	cfg    config
	out    *output
	data   *dataWriter
	inodes metaWriter
	dirs   metaWriter
	count  uint32 // inodes

	sizes map[int64]int // regular file sizes reported by the tree: how many files have each
	dedup map[dedupKey]*fileData
	buf   []byte // scratch for inodes and listings
}

func newBuilder(w io.WriterAt, fsys fs.FS, cfg config, count uint32) (*builder, error) {
	out := &output{w: w, max: cfg.maxSize}
	data, err := newDataWriter(out, superblockSize, cfg)
	if err != nil {
		return nil, err
	}
	// Metadata is compressed with the first data compressor: both are used
	// from this goroutine only, never at the same time.
	b := &builder{
		fsys: fsys, cfg: cfg, out: out, data: data, count: count,
		sizes: map[int64]int{}, dedup: map[dedupKey]*fileData{},
	}
	b.inodes.c = data.comps[0]
	b.dirs.c = data.comps[0]
	return b, nil
}

// build writes the tree under root and returns the padded image size.
func (b *builder) build(root *node) (int64, error) {
	countSizes(root, b.sizes)
	if err := b.writeDir(root); err != nil {
		return 0, err
	}
	b.data.flushFragment()
	if b.out.err != nil {
		return 0, b.out.err
	}
	return b.finish(root)
}

func countSizes(d *node, sizes map[int64]int) {
	for _, c := range d.children {
		switch c.kind {
		case kindDir:
			countSizes(c, sizes)
		case kindFile:
			sizes[c.size]++
		}
	}
}

// writeDir writes the inodes of everything under d, then d's listing and
// inode. Subdirectories go first so that the inodes of d's other entries
// are contiguous, which keeps the listing's headers few.
func (b *builder) writeDir(d *node) error {
	for _, c := range d.children {
		if c.kind == kindDir {
			if err := b.writeDir(c); err != nil {
				return err
			}
		}
	}
	for _, c := range d.children {
		switch c.kind {
		case kindFile:
			fd, err := b.fileData(c)
			if err != nil {
				return err
			}
			c.ref = b.inodes.ref()
			b.buf = appendFileInode(b.buf[:0], c, fd, b.cfg.mtime)
			b.inodes.write(b.buf)
		case kindSymlink:
			c.ref = b.inodes.ref()
			b.buf = appendSymlinkInode(b.buf[:0], c, b.cfg.mtime)
			b.inodes.write(b.buf)
		}
	}
	var l listing
	l, b.buf = writeListing(&b.dirs, d, b.buf)
	if len(l.index) > math.MaxUint16 {
		return fmt.Errorf("squashfs: %s: directory too large (%d entries)", d.path, len(d.children))
	}
	parent := b.count + 1 // the root's parent, as mksquashfs records it
	if d.parent != nil {
		parent = d.parent.ino
	}
	d.ref = b.inodes.ref()
	b.buf = appendDirInode(b.buf[:0], d, l, parent, b.cfg.mtime)
	b.inodes.write(b.buf)
	return b.out.err
}

// fileData stores the contents of regular file n, or finds identical
// contents stored before. Only files whose size another file shares are
// hashed (and so read twice).
func (b *builder) fileData(n *node) (*fileData, error) {
	var h hash.Hash
	if n.size > 0 && b.sizes[n.size] > 1 {
		k, err := b.hashFile(n)
		if err != nil {
			return nil, err
		}
		if fd, ok := b.dedup[k]; ok {
			return fd, nil
		}
		h = sha256.New()
	}
	f, err := b.fsys.Open(n.path)
	if err != nil {
		return nil, fmt.Errorf("squashfs: %w", err)
	}
	defer f.Close()
	fd, err := b.data.writeFile(f, h)
	if err != nil {
		return nil, fmt.Errorf("squashfs: reading %s: %w", n.path, err)
	}
	if h != nil {
		k := dedupKey{size: fd.size}
		h.Sum(k.sum[:0])
		b.dedup[k] = fd
	}
	return fd, nil
}

func (b *builder) hashFile(n *node) (dedupKey, error) {
	f, err := b.fsys.Open(n.path)
	if err != nil {
		return dedupKey{}, fmt.Errorf("squashfs: %w", err)
	}
	defer f.Close()
	k, err := hashReader(f)
	if err != nil {
		return k, fmt.Errorf("squashfs: reading %s: %w", n.path, err)
	}
	return k, nil
}

// finish writes the tables after the data, then the superblock and the
// padding, and returns the padded size. The tables follow the order the
// kernel checks: inodes, directories, fragment table, id table.
func (b *builder) finish(root *node) (int64, error) {
	pos := b.data.pos
	inodeStart := pos
	inodes := b.inodes.bytes()
	b.out.writeAt(inodes, pos)
	pos += int64(len(inodes))

	dirStart := pos
	dirs := b.dirs.bytes()
	b.out.writeAt(dirs, pos)
	pos += int64(len(dirs))

	// Fragment table: entries in metadata blocks, then the index of those
	// blocks, to which the superblock points.
	frags := metaWriter{c: b.data.comps[0]}
	for _, f := range b.data.frags {
		b.buf = le.AppendUint64(b.buf[:0], uint64(f.start))
		b.buf = le.AppendUint32(b.buf, f.size)
		b.buf = le.AppendUint32(b.buf, 0)
		frags.write(b.buf)
	}
	var fragStart int64
	pos, fragStart = b.writeIndexedTable(&frags, pos)

	ids := metaWriter{c: b.data.comps[0]}
	ids.write(le.AppendUint32(nil, 0))
	var idStart int64
	pos, idStart = b.writeIndexedTable(&ids, pos)

	used := pos
	padded := (used + padTo - 1) / padTo * padTo
	if b.out.overflow || (b.cfg.maxSize > 0 && padded > b.cfg.maxSize) {
		return 0, fmt.Errorf("%w: the tree needs %d bytes (%.1f MiB), MaxSize is %d bytes", ErrTooLarge, padded, float64(padded)/(1<<20), b.cfg.maxSize)
	}
	b.out.writeAt(make([]byte, padded-used), used)

	flags := uint16(flagDuplicates | flagNoXattrs)
	sb := make([]byte, 0, superblockSize)
	sb = le.AppendUint32(sb, magic)
	sb = le.AppendUint32(sb, b.count)
	sb = le.AppendUint32(sb, b.cfg.mtime)
	sb = le.AppendUint32(sb, uint32(b.cfg.blockSize))
	sb = le.AppendUint32(sb, uint32(len(b.data.frags)))
	sb = le.AppendUint16(sb, compZlib)
	sb = le.AppendUint16(sb, b.cfg.blockLog)
	sb = le.AppendUint16(sb, flags)
	sb = le.AppendUint16(sb, 1) // ids
	sb = le.AppendUint16(sb, 4) // version 4.0
	sb = le.AppendUint16(sb, 0)
	sb = le.AppendUint64(sb, root.ref)
	sb = le.AppendUint64(sb, uint64(used))
	sb = le.AppendUint64(sb, uint64(idStart))
	sb = le.AppendUint64(sb, noTable) // xattr id table
	sb = le.AppendUint64(sb, uint64(inodeStart))
	sb = le.AppendUint64(sb, uint64(dirStart))
	sb = le.AppendUint64(sb, uint64(fragStart))
	sb = le.AppendUint64(sb, noTable) // export table
	b.out.writeAt(sb, 0)
	if b.out.err != nil {
		return 0, b.out.err
	}
	return padded, nil
}

// writeIndexedTable writes the metadata blocks of m at pos followed by the
// list of their image offsets, and returns the end and the list's offset.
func (b *builder) writeIndexedTable(m *metaWriter, pos int64) (end, index int64) {
	blocks := m.bytes()
	b.out.writeAt(blocks, pos)
	list := make([]byte, 0, 8*len(m.starts))
	for _, s := range m.starts {
		list = le.AppendUint64(list, uint64(pos)+uint64(s))
	}
	index = pos + int64(len(blocks))
	b.out.writeAt(list, index)
	return index + int64(len(list)), index
}
