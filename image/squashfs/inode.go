package squashfs

import (
	"encoding/binary"
	"math"
)

// Inode types. Directory entries always carry the basic type.
const (
	typeDir      = 1
	typeFile     = 2
	typeSymlink  = 3
	typeLDir     = 8
	typeLFile    = 9
	noXattr      = math.MaxUint32
	noFragment   = math.MaxUint32
	maxDirCount  = 256 // entries per directory header
	dirHeaderLen = 12
	dirEntryLen  = 8 // without the name
)

var le = binary.LittleEndian

// appendInodeHeader appends the header every inode starts with. uid and gid
// are index 0 of the id table.
func appendInodeHeader(b []byte, typ, perm uint16, mtime, ino uint32) []byte {
	b = le.AppendUint16(b, typ)
	b = le.AppendUint16(b, perm)
	b = le.AppendUint16(b, 0) // uid index
	b = le.AppendUint16(b, 0) // gid index
	b = le.AppendUint32(b, mtime)
	return le.AppendUint32(b, ino)
}

// appendFileInode appends a regular file inode: basic where it can be,
// extended when an offset or size needs 64 bits or the file has holes.
func appendFileInode(b []byte, n *node, fd *fileData, mtime uint32) []byte {
	if fd.start > math.MaxUint32 || fd.size > math.MaxUint32 || fd.sparse > 0 {
		sparse := fd.sparse
		if sparse >= fd.size {
			// The kernel computes i_blocks from size-sparse-1.
			sparse = fd.size - 1
		}
		b = appendInodeHeader(b, typeLFile, n.perm, mtime, n.ino)
		b = le.AppendUint64(b, uint64(fd.start))
		b = le.AppendUint64(b, uint64(fd.size))
		b = le.AppendUint64(b, uint64(sparse))
		b = le.AppendUint32(b, 1) // nlink
		b = le.AppendUint32(b, fd.fragIndex)
		b = le.AppendUint32(b, fd.fragOffset)
		b = le.AppendUint32(b, noXattr)
	} else {
		b = appendInodeHeader(b, typeFile, n.perm, mtime, n.ino)
		b = le.AppendUint32(b, uint32(fd.start))
		b = le.AppendUint32(b, fd.fragIndex)
		b = le.AppendUint32(b, fd.fragOffset)
		b = le.AppendUint32(b, uint32(fd.size))
	}
	for _, s := range fd.blocks {
		b = le.AppendUint32(b, s)
	}
	return b
}

// appendSymlinkInode appends a basic symlink inode.
func appendSymlinkInode(b []byte, n *node, mtime uint32) []byte {
	b = appendInodeHeader(b, typeSymlink, n.perm, mtime, n.ino)
	b = le.AppendUint32(b, 1) // nlink
	b = le.AppendUint32(b, uint32(len(n.target)))
	return append(b, n.target...)
}

// dirIndex is one entry of an extended directory's index: where in the
// listing a directory header starts, the directory table block holding it,
// and the name of the first entry behind it.
type dirIndex struct {
	index uint32
	start uint32
	name  string
}

// listing is where a directory's entries were written in the directory table.
type listing struct {
	block  uint32 // table offset of the metadata block where it starts
	offset uint16 // offset in that block
	size   uint32 // bytes of entries + 3, as the inode records it
	index  []dirIndex
}

// appendDirInode appends a directory inode: basic where it can be, extended
// when the listing is 64 KiB or more or has an index.
func appendDirInode(b []byte, n *node, l listing, parent, mtime uint32) []byte {
	nlink := 2 + n.subdirs
	if len(l.index) == 0 && l.size <= math.MaxUint16 {
		b = appendInodeHeader(b, typeDir, n.perm, mtime, n.ino)
		b = le.AppendUint32(b, l.block)
		b = le.AppendUint32(b, nlink)
		b = le.AppendUint16(b, uint16(l.size))
		b = le.AppendUint16(b, l.offset)
		return le.AppendUint32(b, parent)
	}
	b = appendInodeHeader(b, typeLDir, n.perm, mtime, n.ino)
	b = le.AppendUint32(b, nlink)
	b = le.AppendUint32(b, l.size)
	b = le.AppendUint32(b, l.block)
	b = le.AppendUint32(b, parent)
	b = le.AppendUint16(b, uint16(len(l.index)))
	b = le.AppendUint16(b, l.offset)
	b = le.AppendUint32(b, noXattr)
	for _, x := range l.index {
		b = le.AppendUint32(b, x.index)
		b = le.AppendUint32(b, x.start)
		b = le.AppendUint32(b, uint32(len(x.name)-1))
		b = append(b, x.name...)
	}
	return b
}

// basicType returns the inode type a directory entry records for n.
func basicType(n *node) uint16 {
	switch n.kind {
	case kindDir:
		return typeDir
	case kindSymlink:
		return typeSymlink
	}
	return typeFile
}

// writeListing writes the entries of directory d, whose children's inodes
// are all written, into the directory table.
//
// Entries are grouped behind headers that name the inode table block and a
// base inode number; a new header starts every 256 entries, when the inode
// block changes, when an inode number is out of 16-bit reach of the base,
// and (as mksquashfs does) when the listing grows past another 8 KiB since
// the last index point, in which case the header is also indexed so that
// the kernel's lookup can skip ahead.
func writeListing(dirs *metaWriter, d *node, buf []byte) (listing, []byte) {
	var l listing
	l.block, l.offset = dirs.pos()
	base := dirs.abs()
	buf = buf[:0]
	hdr := -1 // offset of the open header in buf
	var count int
	var hdrBlock, hdrIno uint32
	indexAt := 0
	closeHeader := func() {
		if hdr >= 0 {
			le.PutUint32(buf[hdr:], uint32(count-1))
		}
	}
	for _, c := range d.children {
		cBlock, cOffset := uint32(c.ref>>16), uint16(c.ref)
		diff := int64(c.ino) - int64(hdrIno)
		fresh := hdr < 0 || count == maxDirCount || cBlock != hdrBlock || diff < math.MinInt16 || diff > math.MaxInt16
		if hdr >= 0 && len(buf)+dirEntryLen+len(c.name)-indexAt > metaBlockSize {
			fresh = true
			indexAt = len(buf)
			l.index = append(l.index, dirIndex{index: uint32(len(buf)), name: c.name})
		}
		if fresh {
			closeHeader()
			hdr, count, hdrBlock, hdrIno = len(buf), 0, cBlock, c.ino
			buf = le.AppendUint32(buf, 0) // count-1, patched by closeHeader
			buf = le.AppendUint32(buf, cBlock)
			buf = le.AppendUint32(buf, c.ino)
		}
		buf = le.AppendUint16(buf, cOffset)
		buf = le.AppendUint16(buf, uint16(int16(int64(c.ino)-int64(hdrIno))))
		buf = le.AppendUint16(buf, basicType(c))
		buf = le.AppendUint16(buf, uint16(len(c.name)-1))
		buf = append(buf, c.name...)
		count++
	}
	closeHeader()
	dirs.write(buf)
	for i := range l.index {
		l.index[i].start = dirs.blockAt(base + int(l.index[i].index))
	}
	l.size = uint32(len(buf)) + 3
	return l, buf
}
