package ext4

import (
	"fmt"
)

// layout is the whole filesystem planned block by block, before anything is
// written.
type layout struct {
	g      *geometry
	o      Options
	fsSeed uint32
	nodes  []*node
	alloc  *allocator

	blockBitmap []uint64 // per group
	inodeBitmap []uint64
	inodeTable  []uint64

	journal       []run
	journalLeaves []uint64
	usedInodes    uint64 // highest inode number in use
}

// plan places every structure of the filesystem. Metadata of all groups
// is packed at the start (flex_bg), then the journal, the directories, and
// the file data in walk order, each file contiguous except where a backup
// superblock is in the way.
func plan(g *geometry, o Options, nodes []*node) (*layout, error) {
	l := &layout{
		g:      g,
		o:      o,
		fsSeed: crc32c(^uint32(0), o.UUID[:]),
		nodes:  nodes,
		alloc:  newAllocator(g.blocks),
	}
	l.usedInodes = uint64(nodes[len(nodes)-1].ino)
	if l.usedInodes > g.ipg*g.groups {
		return nil, fmt.Errorf("ext4: the tree needs %d inodes, the filesystem has %d (lower InodeRatio)",
			l.usedInodes, g.ipg*g.groups)
	}
	l.alloc.reserve(0, g.firstData)
	for gr := range g.groups {
		if g.hasSuper(gr) {
			l.alloc.reserve(g.groupStart(gr), 1+g.gdtBlocks)
		}
	}
	if err := l.placeMetadata(); err != nil {
		return nil, fmt.Errorf("ext4: placing bitmaps and inode tables: %w", err)
	}
	if err := l.placeJournal(); err != nil {
		return nil, err
	}
	l.renderDirs()
	for _, n := range nodes {
		if n.kind == kindDir {
			if err := l.placeData(n); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range nodes {
		if n.kind != kindDir {
			if err := l.placeData(n); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// placeMetadata allocates every group's bitmaps and inode table.
func (l *layout) placeMetadata() error {
	g := l.g
	l.blockBitmap = make([]uint64, g.groups)
	l.inodeBitmap = make([]uint64, g.groups)
	l.inodeTable = make([]uint64, g.groups)
	var err error
	for gr := range g.groups {
		if l.blockBitmap[gr], err = l.alloc.contiguous(1); err != nil {
			return err
		}
	}
	for gr := range g.groups {
		if l.inodeBitmap[gr], err = l.alloc.contiguous(1); err != nil {
			return err
		}
	}
	for gr := range g.groups {
		if l.inodeTable[gr], err = l.alloc.contiguous(g.itb); err != nil {
			return err
		}
	}
	return nil
}

// placeJournal allocates the journal's blocks and extent tree.
func (l *layout) placeJournal() error {
	var err error
	if l.journal, err = l.alloc.runs(l.g.jblocks); err != nil {
		return fmt.Errorf("ext4: placing a journal of %d blocks: %w", l.g.jblocks, err)
	}
	if l.journalLeaves, err = l.placeLeaves(makeExtents(l.journal)); err != nil {
		return fmt.Errorf("ext4: placing the journal's extent tree: %w", err)
	}
	return nil
}

// renderDirs renders the blocks of every directory (lost+found gets 16 KiB
// of empty room like mke2fs makes, so e2fsck need not grow it) and of every
// slow symlink.
func (l *layout) renderDirs() {
	bs := l.g.bs
	lfBlocks := int(min(max(16384/bs, 2), 12))
	for _, n := range l.nodes {
		switch n.kind {
		case kindDir:
			ents := []dirent{
				{n.ino, ".", ftDir},
				{l.nodes[n.parent].ino, "..", ftDir},
			}
			for _, c := range n.children {
				cn := l.nodes[c]
				ents = append(ents, dirent{cn.ino, cn.name, fileType(cn.kind)})
			}
			minBlocks := 1
			if n.ino == lostFoundIno {
				minBlocks = lfBlocks
			}
			n.data = renderDir(ents, bs, inodeSeed(l.fsSeed, n.ino), minBlocks)
		case kindSymlink:
			if n.size >= 60 {
				n.data = make([]byte, bs)
				copy(n.data, n.target)
			}
		}
	}
}

// placeData allocates n's data blocks and extent leaves.
func (l *layout) placeData(n *node) error {
	count := n.blocks(l.g.bs)
	if n.kind == kindSymlink && n.size >= l.g.bs {
		return fmt.Errorf("ext4: symlink %s: target longer than %d bytes", n.path, l.g.bs-1)
	}
	if count == 0 {
		return nil
	}
	var err error
	if n.runs, err = l.alloc.runs(count); err != nil {
		return fmt.Errorf("ext4: placing %s: %w", displayPath(n), err)
	}
	if n.leaves, err = l.placeLeaves(makeExtents(n.runs)); err != nil {
		return fmt.Errorf("ext4: placing %s: %w", displayPath(n), err)
	}
	return nil
}

// placeLeaves allocates the leaf blocks a depth-1 extent tree needs.
func (l *layout) placeLeaves(ex []extent) ([]uint64, error) {
	k, err := leavesNeeded(len(ex), l.g.bs)
	if err != nil || k == 0 {
		return nil, err
	}
	rs, err := l.alloc.runs(uint64(k))
	if err != nil {
		return nil, err
	}
	var leaves []uint64
	for _, r := range rs {
		for i := range r.len {
			leaves = append(leaves, r.start+i)
		}
	}
	return leaves, nil
}

func displayPath(n *node) string {
	if n.path == "" {
		return n.name
	}
	return n.path
}

func fileType(k kind) uint8 {
	switch k {
	case kindDir:
		return ftDir
	case kindSymlink:
		return ftSymlink
	}
	return ftFile
}

// inodeOf returns the encoded form of n.
func (l *layout) inodeOf(n *node) inode {
	bs := l.g.bs
	in := inode{links: 1, size: n.size}
	switch n.kind {
	case kindDir:
		in.mode = modeDir | n.perm
		in.size = uint64(len(n.data))
		links := 2 + n.subdirs
		if links > 65000 { // dir_nlink: 1 means "many"
			links = 1
		}
		in.links = uint16(links)
	case kindFile:
		in.mode = modeFile | n.perm
	case kindSymlink:
		in.mode = modeSymlink | n.perm
		if n.data == nil { // fast symlink: target inside i_block
			copy(in.block[:], n.target)
			return in
		}
	}
	in.flags = flagExtents
	ex := makeExtents(n.runs)
	in.block = extentRoot(ex, n.leaves, bs)
	in.sectors = (n.blocks(bs) + uint64(len(n.leaves))) * (bs / 512)
	return in
}

// journalInode returns the encoded journal inode.
func (l *layout) journalInode() inode {
	bs := l.g.bs
	return inode{
		mode:    modeFile | 0o600,
		links:   1,
		size:    l.g.jblocks * bs,
		sectors: (l.g.jblocks + uint64(len(l.journalLeaves))) * (bs / 512),
		flags:   flagExtents,
		block:   extentRoot(makeExtents(l.journal), l.journalLeaves, bs),
	}
}
