package ext4

import (
	"fmt"
	"math/bits"
)

// On-disk constants of the layout we write.
const (
	inodeSize        = 256
	extraIsize       = 32 // bytes of the large inode used beyond 128
	descSize         = 64 // 64bit group descriptors
	firstIno         = 11
	rootIno          = 2
	journalIno       = 8
	lostFoundIno     = 11
	minJournalBlocks = 1024
	maxJournalBlocks = 10240000 // mke2fs's limit
	maxExtentLen     = 32768    // blocks in one initialized extent
	logGroupsPerFlex = 4
)

// geometry is the shape of the filesystem: block size, groups, inodes.
type geometry struct {
	bs        uint64 // block size in bytes
	blocks    uint64 // blocks in the filesystem
	firstData uint64 // block of the primary superblock's group start (1 for 1 KiB blocks)
	bpg       uint64 // blocks per group
	groups    uint64
	ipg       uint64 // inodes per group
	itb       uint64 // inode table blocks per group
	gdtBlocks uint64 // blocks of group descriptors
	jblocks   uint64 // journal blocks
}

// newGeometry lays out groups and inodes for a partition of size bytes.
func newGeometry(size int64, o Options) (*geometry, error) {
	bs := uint64(o.BlockSize)
	g := &geometry{bs: bs, bpg: bs * 8}
	if bs == 1024 {
		g.firstData = 1
	}
	blocks := uint64(size) / bs
	if blocks > 1<<32-1 {
		return nil, fmt.Errorf("ext4: %d bytes is too large for %d-byte blocks", size, bs)
	}
	for {
		if blocks <= g.firstData+64 {
			return nil, fmt.Errorf("ext4: %d bytes is too small for a filesystem", size)
		}
		g.groups = ceilDiv(blocks-g.firstData, g.bpg)
		g.gdtBlocks = ceilDiv(g.groups*descSize, bs)
		rem := (blocks - g.firstData) % g.bpg
		if g.groups > 1 && rem != 0 {
			// Like mke2fs: drop a last group too small to be worth having.
			need := uint64(50)
			if g.hasSuper(g.groups - 1) {
				need += 1 + g.gdtBlocks
			}
			if rem < need {
				blocks -= rem
				continue
			}
		}
		break
	}
	g.blocks = blocks

	perBlock := bs / inodeSize
	align := max(perBlock, 8)
	inodes := blocks * bs / uint64(o.InodeRatio)
	ipg := ceilDiv(ceilDiv(inodes, g.groups), align) * align
	ipg = max(ipg, 16)
	ipg = min(ipg, bs*8)
	for ipg*g.groups > 1<<32-1 {
		ipg -= align
	}
	g.ipg = ipg
	g.itb = ipg * inodeSize / bs

	g.jblocks = uint64(o.JournalBlocks)
	if g.jblocks == 0 {
		g.jblocks = defaultJournalBlocks(blocks)
	}
	return g, nil
}

// defaultJournalBlocks is mke2fs's (ext2fs_default_journal_size) choice,
// never below the jbd2 minimum of 1024 blocks.
func defaultJournalBlocks(blocks uint64) uint64 {
	switch {
	case blocks < 32768:
		return 1024
	case blocks < 256*1024:
		return 4096
	case blocks < 512*1024:
		return 8192
	case blocks < 4096*1024:
		return 16384
	case blocks < 8192*1024:
		return 32768
	case blocks < 16384*1024:
		return 65536
	case blocks < 32768*1024:
		return 131072
	}
	return 262144
}

// hasSuper reports whether group holds a superblock copy (sparse_super:
// groups 0, 1 and powers of 3, 5 and 7).
func (g *geometry) hasSuper(group uint64) bool {
	if group <= 1 {
		return true
	}
	for _, base := range []uint64{3, 5, 7} {
		n := base
		for n < group {
			n *= base
		}
		if n == group {
			return true
		}
	}
	return false
}

// groupStart is the first block of group.
func (g *geometry) groupStart(group uint64) uint64 {
	return g.firstData + group*g.bpg
}

// groupLen is the number of blocks in group (the last may be short).
func (g *geometry) groupLen(group uint64) uint64 {
	return min(g.bpg, g.blocks-g.groupStart(group))
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// bitset is a plain bit array.
type bitset []uint64

func newBitset(n uint64) bitset { return make(bitset, ceilDiv(n, 64)) }

func (b bitset) get(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i uint64)      { b[i/64] |= 1 << (i % 64) }

// run is a stretch of contiguous blocks.
type run struct{ start, len uint64 }

// allocator hands out blocks front to back, never reusing one.
type allocator struct {
	used bitset
	n    uint64
	next uint64
}

func newAllocator(n uint64) *allocator {
	return &allocator{used: newBitset(n), n: n}
}

// reserve marks count blocks from start used.
func (a *allocator) reserve(start, count uint64) {
	for i := start; i < start+count && i < a.n; i++ {
		a.used.set(i)
	}
}

// free returns the first free block at or after i, or a.n.
func (a *allocator) free(i uint64) uint64 {
	for i < a.n {
		w := a.used[i/64] >> (i % 64)
		if w != ^uint64(0)>>(i%64) {
			return i + uint64(bits.TrailingZeros64(^w))
		}
		i = (i/64 + 1) * 64
	}
	return a.n
}

// contiguous allocates count adjacent blocks.
func (a *allocator) contiguous(count uint64) (uint64, error) {
	start := a.free(a.next)
	for start+count <= a.n {
		end := start
		for end < start+count && !a.used.get(end) {
			end++
		}
		if end == start+count {
			a.reserve(start, count)
			a.next = start + count
			return start, nil
		}
		start = a.free(end)
	}
	return 0, errNoSpace(count)
}

// runs allocates count blocks in as few runs as the reserved areas allow.
func (a *allocator) runs(count uint64) ([]run, error) {
	var rs []run
	for count > 0 {
		start := a.free(a.next)
		if start >= a.n {
			return nil, errNoSpace(count)
		}
		end := start
		for end < a.n && end-start < count && !a.used.get(end) {
			end++
		}
		a.reserve(start, end-start)
		a.next = end
		rs = append(rs, run{start, end - start})
		count -= end - start
	}
	return rs, nil
}

func errNoSpace(count uint64) error {
	return fmt.Errorf("filesystem too small: no room for %d more blocks", count)
}
