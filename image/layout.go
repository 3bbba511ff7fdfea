// Package image defines the SD-card image format of piimage: an MBR with a
// set disk identifier and four partitions (FAT32 boot, root slots A and B,
// ext4 data), and the pipeline that writes them. It knows no overlay and no
// service; the filesystem writers live in its sub-packages.
package image

import (
	"fmt"
)

const (
	// MiB is 1<<20 bytes.
	MiB = int64(1) << 20
	// Align is where the first partition starts and what every partition is
	// aligned to: 4 MiB, the erase-block size SD cards are optimised for.
	Align = 4 * MiB
	// DefaultTotalSize fits every card sold as 2 GB (they hold about
	// 1.9e9 bytes).
	DefaultTotalSize = 1800 * MiB
	// DefaultBootSize is the FAT32 boot partition: firmware and both slots'
	// kernels. 256 MiB is a size go-diskfs-independent tools and the Pi
	// firmware both handle well.
	DefaultBootSize = 256 * MiB
	// DefaultRootSize is the size of each root slot.
	DefaultRootSize = 256 * MiB
)

// Partition numbers (1-based, as Linux names them).
const (
	PartBoot  = 1
	PartRootA = 2
	PartRootB = 3
	PartData  = 4
)

// Extent is a byte range of the image.
type Extent struct {
	Offset, Size int64
}

// Layout is the partition plan of an image.
type Layout struct {
	DiskID    uint32
	TotalSize int64 // 0 means DefaultTotalSize
	BootSize  int64 // 0 means DefaultBootSize
	RootSize  int64 // 0 means DefaultRootSize; both slots are this size
}

func (l Layout) total() int64 {
	if l.TotalSize == 0 {
		return DefaultTotalSize
	}
	return l.TotalSize
}

func (l Layout) boot() int64 {
	if l.BootSize == 0 {
		return DefaultBootSize
	}
	return l.BootSize
}

func (l Layout) root() int64 {
	if l.RootSize == 0 {
		return DefaultRootSize
	}
	return l.RootSize
}

// Size reports the total image size in bytes.
func (l Layout) Size() int64 { return l.total() }

// Extents returns the four partitions' byte ranges, indexed by partition
// number minus one.
func (l Layout) Extents() ([4]Extent, error) {
	var e [4]Extent
	for name, v := range map[string]int64{"total size": l.total(), "boot size": l.boot(), "root size": l.root()} {
		if v%Align != 0 {
			return e, fmt.Errorf("image layout: %s %d is not a multiple of %d MiB", name, v, Align/MiB)
		}
	}
	off := Align
	e[0] = Extent{off, l.boot()}
	off += l.boot()
	e[1] = Extent{off, l.root()}
	off += l.root()
	e[2] = Extent{off, l.root()}
	off += l.root()
	data := l.total() - off
	if data < 16*MiB {
		return e, fmt.Errorf("image layout: total size %d MiB leaves %d MiB for the data partition; need at least 16 MiB", l.total()/MiB, data/MiB)
	}
	e[3] = Extent{off, data}
	return e, nil
}

// MBR returns the partition table for the layout.
func (l Layout) MBR() (*MBR, error) {
	ext, err := l.Extents()
	if err != nil {
		return nil, err
	}
	m := &MBR{DiskID: l.DiskID}
	types := [4]byte{TypeFAT32LBA, TypeLinux, TypeLinux, TypeLinux}
	for i, x := range ext {
		m.Partitions[i] = MBRPartition{
			Bootable: i == 0,
			Type:     types[i],
			Start:    uint32(x.Offset / SectorSize),
			Sectors:  uint32(x.Size / SectorSize),
		}
	}
	return m, nil
}

// SlotPartition returns the partition number holding root slot "a" or "b".
func SlotPartition(slot string) (int, error) {
	switch slot {
	case "a":
		return PartRootA, nil
	case "b":
		return PartRootB, nil
	}
	return 0, fmt.Errorf("unknown slot %q: want a or b", slot)
}

// SlotDir is the folder on the boot partition that holds a slot's kernel,
// device trees and cmdline.txt; config.txt selects it with os_prefix.
func SlotDir(slot string) string { return "slot-" + slot }
