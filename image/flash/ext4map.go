package flash

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// superblock is what flash needs of an ext4 superblock.
type superblock struct {
	blockSize   int64
	blocks      int64
	firstData   int64
	perGroup    int64
	descSize    int64
	inodes      int64
	freeInodes  int64
	incompat    uint32
	roCompat    uint32
	label       string
	uuid        [16]byte
	hashSeed    [16]byte
	mkfsTime    time.Time
	partitionSz int64
}

// Feature bits that change where block bitmaps are or what they mean.
const (
	ext4Incompat64Bit  = 0x80
	ext4IncompatMetaBG = 0x10
	ext4RoBigalloc     = 0x200
	ext4BlockUninit    = 0x2 // group descriptor flag: bitmap not initialised
)

// readSuperblock reads and sanity-checks the primary superblock of the
// ext4 filesystem in r.
func readSuperblock(r *io.SectionReader) (*superblock, error) {
	b := make([]byte, 1024)
	if _, err := r.ReadAt(b, 1024); err != nil {
		return nil, fmt.Errorf("reading the ext4 superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(b[0x38:]) != 0xEF53 {
		return nil, errors.New("no ext4 superblock (magic 0xEF53 missing)")
	}
	logBS := le.Uint32(b[0x18:])
	if logBS > 6 {
		return nil, fmt.Errorf("ext4: bad block size 2^(10+%d)", logBS)
	}
	sb := &superblock{
		blockSize:   1024 << logBS,
		blocks:      int64(le.Uint32(b[0x04:])),
		firstData:   int64(le.Uint32(b[0x14:])),
		perGroup:    int64(le.Uint32(b[0x20:])),
		inodes:      int64(le.Uint32(b[0x00:])),
		freeInodes:  int64(le.Uint32(b[0x10:])),
		incompat:    le.Uint32(b[0x60:]),
		roCompat:    le.Uint32(b[0x64:]),
		descSize:    32,
		partitionSz: r.Size(),
	}
	if sb.incompat&ext4Incompat64Bit != 0 {
		sb.blocks |= int64(le.Uint32(b[0x150:])) << 32
		sb.descSize = int64(le.Uint16(b[0xFE:]))
		if sb.descSize < 32 || sb.descSize > 1024 || sb.descSize&(sb.descSize-1) != 0 {
			return nil, fmt.Errorf("ext4: bad group descriptor size %d", sb.descSize)
		}
	}
	copy(sb.uuid[:], b[0x68:0x78])
	copy(sb.hashSeed[:], b[0xEC:0xFC])
	label := b[0x78:0x88]
	for i, c := range label {
		if c == 0 {
			label = label[:i]
			break
		}
	}
	sb.label = string(label)
	sec := int64(le.Uint32(b[0x108:])) | int64(b[0x276])<<32
	sb.mkfsTime = time.Unix(sec, 0).UTC()
	switch {
	case sb.blocks == 0 || sb.blocks > r.Size()/sb.blockSize:
		return nil, fmt.Errorf("ext4: %d blocks of %d bytes do not fit the %d-byte partition", sb.blocks, sb.blockSize, r.Size())
	case sb.perGroup == 0 || sb.perGroup > 8*sb.blockSize:
		return nil, fmt.Errorf("ext4: bad blocks per group %d", sb.perGroup)
	case sb.firstData >= sb.blocks:
		return nil, fmt.Errorf("ext4: first data block %d past the end", sb.firstData)
	case sb.freeInodes > sb.inodes:
		return nil, fmt.Errorf("ext4: %d free inodes of %d", sb.freeInodes, sb.inodes)
	}
	return sb, nil
}

// usedInodes reports how many inodes the superblock counts as in use.
func (sb *superblock) usedInodes() int64 { return sb.inodes - sb.freeInodes }

// ext4Used returns the byte ranges, relative to r, of the blocks that the
// block bitmaps of the ext4 filesystem in r mark as allocated (metadata,
// journal, directories and files), plus the first 4 KiB (boot block and
// superblock). Free blocks hold nothing a reader looks at. A group whose
// bitmap is not initialised counts as wholly allocated; filesystems with
// meta_bg or bigalloc are refused.
func ext4Used(r *io.SectionReader, size int64) ([]Extent, error) {
	sb, err := readSuperblock(r)
	if err != nil {
		return nil, err
	}
	if sb.incompat&ext4IncompatMetaBG != 0 || sb.roCompat&ext4RoBigalloc != 0 {
		return nil, errors.New("ext4: meta_bg and bigalloc are not supported")
	}
	bs := sb.blockSize
	groups := (sb.blocks - sb.firstData + sb.perGroup - 1) / sb.perGroup
	if groups*sb.descSize > min(size, 64<<20) {
		return nil, fmt.Errorf("ext4: %d groups is too many for %d bytes", groups, size)
	}
	gdt := make([]byte, groups*sb.descSize)
	if _, err := r.ReadAt(gdt, (sb.firstData+1)*bs); err != nil {
		return nil, fmt.Errorf("reading the ext4 group descriptors: %w", err)
	}
	le := binary.LittleEndian
	out := []Extent{{0, min(4096, size)}}
	bm := make([]byte, bs)
	for g := range groups {
		d := gdt[g*sb.descSize : (g+1)*sb.descSize]
		start := sb.firstData + g*sb.perGroup
		n := min(sb.perGroup, sb.blocks-start)
		if le.Uint16(d[0x12:])&ext4BlockUninit != 0 {
			out = addExtent(out, Extent{start * bs, n * bs})
			continue
		}
		loc := int64(le.Uint32(d[0:]))
		if sb.descSize >= 64 {
			loc |= int64(le.Uint32(d[0x20:])) << 32
		}
		if loc <= 0 || loc >= sb.blocks {
			return nil, fmt.Errorf("ext4: group %d's block bitmap at block %d is outside the filesystem", g, loc)
		}
		if _, err := r.ReadAt(bm, loc*bs); err != nil {
			return nil, fmt.Errorf("reading ext4 block bitmap %d: %w", g, err)
		}
		for i := int64(0); i < n; {
			if bm[i/8]&(1<<(i%8)) == 0 {
				i++
				continue
			}
			j := i + 1
			for j < n && bm[j/8]&(1<<(j%8)) != 0 {
				j++
			}
			out = addExtent(out, Extent{(start + i) * bs, (j - i) * bs})
			i = j
		}
	}
	return out, nil
}
