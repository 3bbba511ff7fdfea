package ext4

import (
	"encoding/binary"
	"math/bits"
)

// Feature flags we set.
const (
	compatHasJournal = 0x4
	compatExtAttr    = 0x8
	compatDirIndex   = 0x20

	incompatFiletype = 0x2
	incompatExtents  = 0x40
	incompat64bit    = 0x80
	incompatFlexBG   = 0x200

	roCompatSparseSuper  = 0x1
	roCompatLargeFile    = 0x2
	roCompatHugeFile     = 0x8
	roCompatDirNlink     = 0x20
	roCompatExtraIsize   = 0x40
	roCompatMetadataCsum = 0x400

	featureCompat   = compatHasJournal | compatExtAttr | compatDirIndex
	featureIncompat = incompatFiletype | incompatExtents | incompat64bit | incompatFlexBG
	featureRoCompat = roCompatSparseSuper | roCompatLargeFile | roCompatHugeFile |
		roCompatDirNlink | roCompatExtraIsize | roCompatMetadataCsum

	bgInodeZeroed = 0x4 // EXT4_BG_INODE_ZEROED: the image is pre-zeroed
)

// groupStats is what a group descriptor counts.
type groupStats struct {
	freeBlocks, freeInodes, dirs, unused uint64
	blockCsum, inodeCsum                 uint32
}

// renderBlockBitmap renders group gr's block bitmap; bits past the end of the
// filesystem are set, as ext4 requires.
func (l *layout) renderBlockBitmap(gr uint64) (bm []byte, free uint64) {
	g := l.g
	bm = make([]byte, g.bs)
	start, n := g.groupStart(gr), g.groupLen(gr)
	for i := range n {
		if l.alloc.used.get(start + i) {
			bm[i/8] |= 1 << (i % 8)
		}
	}
	for i := n; i < g.bs*8; i++ {
		bm[i/8] |= 1 << (i % 8)
	}
	used := 0
	for _, b := range bm {
		used += bits.OnesCount8(b)
	}
	return bm, g.bs*8 - uint64(used)
}

// renderInodeBitmap renders group gr's inode bitmap and counts its used inodes;
// inodes are handed out in order, so the used ones are a prefix.
func (l *layout) renderInodeBitmap(gr uint64) (bm []byte, used uint64) {
	g := l.g
	bm = make([]byte, g.bs)
	first := gr * g.ipg // inode number before the group's first
	if l.usedInodes > first {
		used = min(l.usedInodes-first, g.ipg)
	}
	for i := range used {
		bm[i/8] |= 1 << (i % 8)
	}
	for i := g.ipg; i < g.bs*8; i++ {
		bm[i/8] |= 1 << (i % 8)
	}
	return bm, used
}

// putDesc encodes group gr's descriptor with its checksum.
func (l *layout) putDesc(b []byte, gr uint64, s groupStats) {
	clear(b[:descSize])
	put32x2 := func(lo, hi int, v uint64) {
		le.PutUint32(b[lo:], uint32(v))
		le.PutUint32(b[hi:], uint32(v>>32))
	}
	put16x2 := func(lo, hi int, v uint64) {
		le.PutUint16(b[lo:], uint16(v))
		le.PutUint16(b[hi:], uint16(v>>16))
	}
	put32x2(0x00, 0x20, l.blockBitmap[gr])
	put32x2(0x04, 0x24, l.inodeBitmap[gr])
	put32x2(0x08, 0x28, l.inodeTable[gr])
	put16x2(0x0C, 0x2C, s.freeBlocks)
	put16x2(0x0E, 0x2E, s.freeInodes)
	put16x2(0x10, 0x30, s.dirs)
	le.PutUint16(b[0x12:], bgInodeZeroed)
	put16x2(0x18, 0x38, uint64(s.blockCsum))
	put16x2(0x1A, 0x3A, uint64(s.inodeCsum))
	put16x2(0x1C, 0x32, s.unused)
	var num [4]byte
	le.PutUint32(num[:], uint32(gr))
	c := crc32c(crc32c(l.fsSeed, num[:]), b[:descSize])
	le.PutUint16(b[0x1E:], uint16(c))
}

// superblock renders the 1024-byte superblock copy stored in group gr.
func (l *layout) superblock(gr, freeBlocks, freeInodes uint64, jnl [60]byte) []byte {
	g, o := l.g, l.o
	b := make([]byte, 1024)
	sec := uint64(o.ModTime.Unix())
	putTime := func(lo, hi int) {
		le.PutUint32(b[lo:], uint32(sec))
		b[hi] = uint8(sec >> 32)
	}
	le.PutUint32(b[0x00:], uint32(g.ipg*g.groups))
	le.PutUint32(b[0x04:], uint32(g.blocks))
	le.PutUint32(b[0x0C:], uint32(freeBlocks))
	le.PutUint32(b[0x10:], uint32(freeInodes))
	le.PutUint32(b[0x14:], uint32(g.firstData))
	logBS := uint32(bits.TrailingZeros64(g.bs) - 10)
	le.PutUint32(b[0x18:], logBS)
	le.PutUint32(b[0x1C:], logBS)
	le.PutUint32(b[0x20:], uint32(g.bpg))
	le.PutUint32(b[0x24:], uint32(g.bpg))
	le.PutUint32(b[0x28:], uint32(g.ipg))
	putTime(0x30, 0x274)               // wtime
	le.PutUint16(b[0x36:], 0xFFFF)     // max mount count -1: no forced checks
	le.PutUint16(b[0x38:], 0xEF53)     // magic
	le.PutUint16(b[0x3A:], 1)          // state: clean
	le.PutUint16(b[0x3C:], 1)          // errors: continue
	putTime(0x40, 0x277)               // lastcheck
	le.PutUint32(b[0x4C:], 1)          // dynamic revision
	le.PutUint32(b[0x54:], firstIno)   // first non-reserved inode
	le.PutUint16(b[0x58:], inodeSize)  // inode size
	le.PutUint16(b[0x5A:], uint16(gr)) // block group of this copy
	le.PutUint32(b[0x5C:], featureCompat)
	le.PutUint32(b[0x60:], featureIncompat)
	le.PutUint32(b[0x64:], featureRoCompat)
	copy(b[0x68:0x78], o.UUID[:])
	copy(b[0x78:0x88], o.Label)
	le.PutUint32(b[0xE0:], journalIno)
	copy(b[0xEC:0xFC], o.HashSeed[:])
	b[0xFC] = 1                      // default hash: half_md4
	b[0xFD] = 1                      // s_jnl_blocks holds the journal inode's blocks
	le.PutUint16(b[0xFE:], descSize) // group descriptor size
	le.PutUint32(b[0x100:], 0x0C)    // default mount options: user_xattr, acl
	putTime(0x108, 0x276)            // mkfs time
	copy(b[0x10C:0x148], jnl[:])     // s_jnl_blocks[0..14]
	le.PutUint32(b[0x148:], uint32((g.jblocks*g.bs)>>32))
	le.PutUint32(b[0x14C:], uint32(g.jblocks*g.bs))
	le.PutUint32(b[0x150:], uint32(g.blocks>>32))
	le.PutUint32(b[0x158:], uint32(freeBlocks>>32))
	le.PutUint16(b[0x15C:], extraIsize) // min extra isize
	le.PutUint16(b[0x15E:], extraIsize) // want extra isize
	le.PutUint32(b[0x160:], 1)          // signed directory hash
	b[0x174] = logGroupsPerFlex
	b[0x175] = 1 // checksum type: crc32c
	le.PutUint32(b[0x3FC:], crc32c(^uint32(0), b[:0x3FC]))
	return b
}

// journalSuperblock renders an empty, clean jbd2 v2 superblock with no
// optional features (as mke2fs makes it; the kernel adds features it
// needs on first mount).
func journalSuperblock(bs, jblocks uint64, uuid [16]byte) []byte {
	be := binary.BigEndian
	b := make([]byte, 1024)
	be.PutUint32(b[0x00:], 0xC03B3998) // magic
	be.PutUint32(b[0x04:], 4)          // superblock v2
	be.PutUint32(b[0x0C:], uint32(bs))
	be.PutUint32(b[0x10:], uint32(jblocks))
	be.PutUint32(b[0x14:], 1) // first log block
	be.PutUint32(b[0x18:], 1) // first expected commit sequence
	be.PutUint32(b[0x1C:], 0) // start 0: the journal is empty
	copy(b[0x30:0x40], uuid[:])
	be.PutUint32(b[0x40:], 1) // users
	return b
}
