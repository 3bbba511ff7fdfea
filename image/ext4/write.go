package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// chunkSize is how much file data is read and written at once.
const chunkSize = 1 << 20

// write puts the planned filesystem into w.
func (l *layout) write(w io.WriterAt, fsys fs.FS) error {
	if err := l.writeData(w, fsys); err != nil {
		return err
	}
	if err := l.writeInodeTables(w); err != nil {
		return err
	}
	return l.writeGroups(w)
}

// writeAt writes b at block blk (plus byte offset off).
func (l *layout) writeAt(w io.WriterAt, b []byte, blk, off uint64, what string) error {
	if _, err := w.WriteAt(b, int64(blk*l.g.bs+off)); err != nil {
		return fmt.Errorf("ext4: writing %s: %w", what, err)
	}
	return nil
}

// writeRuns writes data over runs, front to back.
func (l *layout) writeRuns(w io.WriterAt, data []byte, runs []run, what string) error {
	for _, r := range runs {
		n := min(uint64(len(data)), r.len*l.g.bs)
		if err := l.writeAt(w, data[:n], r.start, 0, what); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// writeData writes the journal superblock, directory blocks, symlink
// blocks, extent leaves and file contents.
func (l *layout) writeData(w io.WriterAt, fsys fs.FS) error {
	bs := l.g.bs
	jsb := journalSuperblock(bs, l.g.jblocks, l.o.UUID)
	if err := l.writeAt(w, jsb, l.journal[0].start, 0, "the journal superblock"); err != nil {
		return err
	}
	if err := l.writeLeaves(w, journalIno, l.journal, l.journalLeaves, "the journal"); err != nil {
		return err
	}
	buf := make([]byte, chunkSize)
	for _, n := range l.nodes {
		what := displayPath(n)
		if err := l.writeLeaves(w, n.ino, n.runs, n.leaves, what); err != nil {
			return err
		}
		if n.data != nil {
			if err := l.writeRuns(w, n.data, n.runs, what); err != nil {
				return err
			}
			continue
		}
		if n.kind == kindFile && n.size > 0 {
			if err := l.copyFile(w, fsys, n, buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeLeaves writes the leaf blocks of a depth-1 extent tree.
func (l *layout) writeLeaves(w io.WriterAt, ino uint32, runs []run, leaves []uint64, what string) error {
	if len(leaves) == 0 {
		return nil
	}
	b := renderLeaves(makeExtents(runs), len(leaves), l.g.bs, inodeSeed(l.fsSeed, ino))
	for i, blk := range leaves {
		if err := l.writeAt(w, b[uint64(i)*l.g.bs:uint64(i+1)*l.g.bs], blk, 0, what+"'s extent tree"); err != nil {
			return err
		}
	}
	return nil
}

// copyFile streams n's content from fsys into its blocks, skipping
// all-zero chunks (unwritten bytes already read as zero).
func (l *layout) copyFile(w io.WriterAt, fsys fs.FS, n *node, buf []byte) error {
	f, err := fsys.Open(n.path)
	if err != nil {
		return fmt.Errorf("ext4: opening %s: %w", n.path, err)
	}
	defer f.Close()
	left := n.size
	for _, r := range n.runs {
		pos := r.start * l.g.bs
		end := pos + min(left, r.len*l.g.bs)
		for pos < end {
			k := min(end-pos, uint64(len(buf)))
			if _, err := io.ReadFull(f, buf[:k]); err != nil {
				return fmt.Errorf("ext4: reading %s (it changed size?): %w", n.path, err)
			}
			if !allZero(buf[:k]) {
				if _, err := w.WriteAt(buf[:k], int64(pos)); err != nil {
					return fmt.Errorf("ext4: writing %s: %w", n.path, err)
				}
			}
			pos += k
			left -= k
		}
	}
	if k, err := f.Read(buf[:1]); k > 0 || (err != nil && !errors.Is(err, io.EOF)) {
		if err == nil {
			err = errors.New("longer than its size")
		}
		return fmt.Errorf("ext4: reading %s: %w", n.path, err)
	}
	return nil
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] != 0 || b[len(b)-1] != 0 {
		return false
	}
	return bytes.Count(b, []byte{0}) == len(b)
}

// writeInodeTables writes the used part of every group's inode table.
func (l *layout) writeInodeTables(w io.WriterAt) error {
	g := l.g
	byIno := make(map[uint32]*node, len(l.nodes))
	for _, n := range l.nodes {
		byIno[n.ino] = n
	}
	for gr := range g.groups {
		first := gr * g.ipg
		if l.usedInodes <= first {
			break
		}
		used := min(l.usedInodes-first, g.ipg)
		tbl := make([]byte, used*inodeSize)
		for i := range used {
			ino := uint32(first + i + 1)
			b := tbl[i*inodeSize : (i+1)*inodeSize]
			switch {
			case ino == 1:
				putBadBlocksInode(b, l.fsSeed, l.o.ModTime)
			case ino == journalIno:
				putInode(b, l.journalInode(), ino, l.fsSeed, l.o.ModTime)
			case byIno[ino] != nil:
				putInode(b, l.inodeOf(byIno[ino]), ino, l.fsSeed, l.o.ModTime)
			}
		}
		if err := l.writeAt(w, tbl, l.inodeTable[gr], 0, fmt.Sprintf("inode table %d", gr)); err != nil {
			return err
		}
	}
	return nil
}

// writeGroups writes the bitmaps, then the group descriptors and
// superblock into group 0 and every backup group.
func (l *layout) writeGroups(w io.WriterAt) error {
	g := l.g
	gdt := make([]byte, g.gdtBlocks*g.bs)
	dirs := make([]uint64, g.groups)
	for _, n := range l.nodes {
		if n.kind == kindDir {
			dirs[(uint64(n.ino)-1)/g.ipg]++
		}
	}
	var freeBlocks, freeInodes uint64
	for gr := range g.groups {
		bb, fb := l.renderBlockBitmap(gr)
		ib, used := l.renderInodeBitmap(gr)
		s := groupStats{
			freeBlocks: fb,
			freeInodes: g.ipg - used,
			dirs:       dirs[gr],
			unused:     g.ipg - used,
			blockCsum:  crc32c(l.fsSeed, bb[:g.bpg/8]),
			inodeCsum:  crc32c(l.fsSeed, ib[:g.ipg/8]),
		}
		freeBlocks += s.freeBlocks
		freeInodes += s.freeInodes
		l.putDesc(gdt[gr*descSize:], gr, s)
		if err := l.writeAt(w, bb, l.blockBitmap[gr], 0, fmt.Sprintf("block bitmap %d", gr)); err != nil {
			return err
		}
		if err := l.writeAt(w, ib, l.inodeBitmap[gr], 0, fmt.Sprintf("inode bitmap %d", gr)); err != nil {
			return err
		}
	}
	jnl := l.journalInode().block
	for gr := range g.groups {
		if !g.hasSuper(gr) {
			continue
		}
		start := g.groupStart(gr)
		sb := l.superblock(gr, freeBlocks, freeInodes, jnl)
		// The primary superblock sits 1024 bytes into the partition, which
		// is inside block 0 unless blocks are 1 KiB; backups start their
		// group's first block.
		sbBlk, sbOff := start, uint64(0)
		if gr == 0 && g.bs > 1024 {
			sbOff = 1024
		}
		if err := l.writeAt(w, sb, sbBlk, sbOff, fmt.Sprintf("superblock copy %d", gr)); err != nil {
			return err
		}
		if err := l.writeAt(w, gdt, start+1, 0, fmt.Sprintf("group descriptors copy %d", gr)); err != nil {
			return err
		}
	}
	return nil
}
