package ext4

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

var le = binary.LittleEndian

// castagnoli is the CRC32C table (read-only after init).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c continues a raw CRC32C (no pre- or post-inversion), as the kernel's
// crc32c_le and e2fsprogs' ext2fs_crc32c_le do.
func crc32c(crc uint32, p []byte) uint32 {
	return ^crc32.Update(^crc, castagnoli, p)
}

// inodeSeed is the per-inode checksum seed: the filesystem seed over the
// inode number and generation (always 0 here).
func inodeSeed(fsSeed, ino uint32) uint32 {
	var b [8]byte
	le.PutUint32(b[:], ino)
	return crc32c(fsSeed, b[:])
}

// Inode mode type bits and flags.
const (
	modeFile    = 0o100000
	modeDir     = 0o040000
	modeSymlink = 0o120000
	flagExtents = 0x80000
)

// inode is what an encoded inode varies in.
type inode struct {
	mode    uint16
	links   uint16
	size    uint64
	sectors uint64 // i_blocks in 512-byte units
	flags   uint32
	block   [60]byte // i_block: extent tree root or fast symlink target
}

// encodeTime splits t into ext4's 32-bit seconds and the extra field (two
// epoch bits and nanoseconds).
func encodeTime(t time.Time) (lo, extra uint32) {
	s := t.Unix()
	lo = uint32(s)
	epoch := uint32((s-int64(int32(lo)))>>32) & 3
	return lo, epoch | uint32(t.Nanosecond())<<2
}

// putInode encodes in into b (inodeSize bytes) with its checksum.
func putInode(b []byte, in inode, ino, fsSeed uint32, mtime time.Time) {
	clear(b[:inodeSize])
	sec, extra := encodeTime(mtime)
	le.PutUint16(b[0x00:], in.mode)
	le.PutUint32(b[0x04:], uint32(in.size))
	le.PutUint32(b[0x08:], sec) // atime
	le.PutUint32(b[0x0C:], sec) // ctime
	le.PutUint32(b[0x10:], sec) // mtime
	le.PutUint16(b[0x1A:], in.links)
	le.PutUint32(b[0x1C:], uint32(in.sectors))
	le.PutUint32(b[0x20:], in.flags)
	copy(b[0x28:0x64], in.block[:])
	le.PutUint32(b[0x6C:], uint32(in.size>>32))
	le.PutUint16(b[0x74:], uint16(in.sectors>>32))
	le.PutUint16(b[0x80:], extraIsize)
	le.PutUint32(b[0x84:], extra) // ctime_extra
	le.PutUint32(b[0x88:], extra) // mtime_extra
	le.PutUint32(b[0x8C:], extra) // atime_extra
	le.PutUint32(b[0x90:], sec)   // crtime
	le.PutUint32(b[0x94:], extra) // crtime_extra
	c := crc32c(inodeSeed(fsSeed, ino), b[:inodeSize])
	le.PutUint16(b[0x7C:], uint16(c))
	le.PutUint16(b[0x82:], uint16(c>>16))
}

// putBadBlocksInode encodes inode 1 as mke2fs does: times set, no extra
// fields, so only the low half of the checksum is stored.
func putBadBlocksInode(b []byte, fsSeed uint32, mtime time.Time) {
	clear(b[:inodeSize])
	sec, _ := encodeTime(mtime)
	le.PutUint32(b[0x08:], sec)
	le.PutUint32(b[0x0C:], sec)
	le.PutUint32(b[0x10:], sec)
	c := crc32c(inodeSeed(fsSeed, 1), b[:inodeSize])
	le.PutUint16(b[0x7C:], uint16(c))
}

// extent maps length blocks from logical block logical to start.
type extent struct {
	logical uint32
	start   uint64
	length  uint32
}

// makeExtents cuts runs into extents of at most maxExtentLen blocks.
func makeExtents(runs []run) []extent {
	var ex []extent
	var logical uint64
	for _, r := range runs {
		for off := uint64(0); off < r.len; off += maxExtentLen {
			n := min(r.len-off, maxExtentLen)
			ex = append(ex, extent{uint32(logical), r.start + off, uint32(n)})
			logical += n
		}
	}
	return ex
}

// leafCapacity is the number of extents in one leaf block.
func leafCapacity(bs uint64) int { return int((bs - 12) / 12) }

// leavesNeeded is the number of leaf blocks for n extents: 0 when they fit
// in the inode (depth 0), otherwise a depth-1 tree.
func leavesNeeded(n int, bs uint64) (int, error) {
	if n <= 4 {
		return 0, nil
	}
	leaves := (n + leafCapacity(bs) - 1) / leafCapacity(bs)
	if leaves > 4 {
		return 0, fmt.Errorf("%d extents need an extent tree deeper than 1", n)
	}
	return leaves, nil
}

func putExtentHeader(b []byte, entries, maxEntries, depth int) {
	le.PutUint16(b[0:], 0xF30A)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(maxEntries))
	le.PutUint16(b[6:], uint16(depth))
	le.PutUint32(b[8:], 0)
}

func putExtent(b []byte, e extent) {
	le.PutUint32(b[0:], e.logical)
	le.PutUint16(b[4:], uint16(e.length))
	le.PutUint16(b[6:], uint16(e.start>>32))
	le.PutUint32(b[8:], uint32(e.start))
}

// extentRoot builds i_block for ex, pointing at leaves when there are any.
func extentRoot(ex []extent, leaves []uint64, bs uint64) [60]byte {
	var b [60]byte
	if len(leaves) == 0 {
		putExtentHeader(b[:], len(ex), 4, 0)
		for i, e := range ex {
			putExtent(b[12+12*i:], e)
		}
		return b
	}
	putExtentHeader(b[:], len(leaves), 4, 1)
	per := leafCapacity(bs)
	for i, leaf := range leaves {
		p := b[12+12*i:]
		le.PutUint32(p[0:], ex[i*per].logical)
		le.PutUint32(p[4:], uint32(leaf))
		le.PutUint16(p[8:], uint16(leaf>>32))
	}
	return b
}

// renderLeaves builds the leaf blocks of a depth-1 extent tree, each with
// its checksum tail.
func renderLeaves(ex []extent, nleaves int, bs uint64, seed uint32) []byte {
	per := leafCapacity(bs)
	out := make([]byte, uint64(nleaves)*bs)
	for i := range nleaves {
		blk := out[uint64(i)*bs : uint64(i+1)*bs]
		part := ex[i*per : min(len(ex), (i+1)*per)]
		putExtentHeader(blk, len(part), per, 0)
		for j, e := range part {
			putExtent(blk[12+12*j:], e)
		}
		tail := 12 + 12*per
		le.PutUint32(blk[tail:], crc32c(seed, blk[:tail]))
	}
	return out
}

// File types in directory entries.
const (
	ftFile    = 1
	ftDir     = 2
	ftSymlink = 7
)

// dirent is one directory entry.
type dirent struct {
	ino  uint32
	name string
	typ  uint8
}

// renderDir packs ents into linear directory blocks, each ending in a
// checksum tail; minBlocks pads with empty blocks (lost+found).
func renderDir(ents []dirent, bs uint64, seed uint32, minBlocks int) []byte {
	usable := int(bs) - 12
	var out []byte
	blk := make([]byte, bs)
	off, last := 0, -1
	flush := func() {
		if last < 0 { // empty block: one unused entry spanning it
			le.PutUint16(blk[4:], uint16(usable))
		} else {
			le.PutUint16(blk[last+4:], uint16(usable-last))
		}
		le.PutUint16(blk[usable+4:], 12)
		blk[usable+7] = 0xDE
		le.PutUint32(blk[usable+8:], crc32c(seed, blk[:usable]))
		out = append(out, blk...)
		clear(blk)
		off, last = 0, -1
	}
	for _, e := range ents {
		rec := (8 + len(e.name) + 3) &^ 3
		if off+rec > usable {
			flush()
		}
		le.PutUint32(blk[off:], e.ino)
		le.PutUint16(blk[off+4:], uint16(rec))
		blk[off+6] = uint8(len(e.name))
		blk[off+7] = e.typ
		copy(blk[off+8:], e.name)
		last = off
		off += rec
	}
	flush()
	for len(out) < minBlocks*int(bs) {
		flush()
	}
	return out
}
