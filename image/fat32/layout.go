package fat32

import (
	"encoding/binary"
	"fmt"
)

// On-disk constants.
const (
	sectorSize      = 512
	reservedSectors = 32
	numFATs         = 2
	mediaFixed      = 0xF8
	rootCluster     = 2
	fsInfoSector    = 1
	backupBoot      = 6
	dirEntrySize    = 32

	// minClusters is the smallest cluster count that makes a volume FAT32
	// rather than FAT16; maxClusters the largest FAT32 allows.
	minClusters = 65525
	maxClusters = 0x0FFFFFF5

	fatEOC  = 0x0FFFFFFF // end of chain as Linux writes it
	fatMask = 0x0FFFFFFF

	attrReadOnly = 0x01
	attrHidden   = 0x02
	attrSystem   = 0x04
	attrVolume   = 0x08
	attrDir      = 0x10
	attrArchive  = 0x20
	attrLFN      = 0x0F
	lfnLast      = 0x40
	ntLowerBase  = 0x08
	ntLowerExt   = 0x10
)

// layout is the geometry of a volume.
type layout struct {
	totalSectors uint32
	secPerClus   uint32
	fatSectors   uint32 // per FAT
	clusters     uint32 // data clusters, numbered 2..clusters+1
}

// defaultSectorsPerCluster picks the cluster size as mkfs.fat 4.2 does for
// FAT32 (after fatgen103): 512-byte clusters up to 260 MiB, 4 KiB up to
// 8 GiB, 8 KiB up to 16 GiB, 16 KiB up to 32 GiB, 32 KiB above.
func defaultSectorsPerCluster(totalSectors uint32) uint32 {
	mib := (uint64(totalSectors) + 2047) / 2048
	switch {
	case mib > 32<<10:
		return 64
	case mib > 16<<10:
		return 32
	case mib > 8<<10:
		return 16
	case mib > 260:
		return 8
	}
	return 1
}

// newLayout computes the geometry of a volume of size bytes. spc is the
// requested sectors per cluster, 0 to choose: then the mkfs.fat size is
// halved or doubled until the cluster count is valid for FAT32.
func newLayout(size int64, spc int) (layout, error) {
	if size < 0 || size/sectorSize > 0xFFFFFFFF {
		return layout{}, fmt.Errorf("size %d bytes is out of range for FAT32", size)
	}
	total := uint32(size / sectorSize)
	if spc != 0 {
		if spc < 1 || spc > 128 || spc&(spc-1) != 0 {
			return layout{}, fmt.Errorf("sectors per cluster %d: must be a power of two from 1 to 128", spc)
		}
		l := fitLayout(total, uint32(spc))
		if l.clusters < minClusters || l.clusters > maxClusters {
			return layout{}, fmt.Errorf("%d-byte clusters on %d bytes give %d clusters; FAT32 needs %d to %d",
				spc*sectorSize, size, l.clusters, minClusters, maxClusters)
		}
		return l, nil
	}
	s := defaultSectorsPerCluster(total)
	l := fitLayout(total, s)
	for l.clusters < minClusters && s > 1 {
		s /= 2
		l = fitLayout(total, s)
	}
	for l.clusters > maxClusters && s < 128 {
		s *= 2
		l = fitLayout(total, s)
	}
	if l.clusters < minClusters || l.clusters > maxClusters {
		return layout{}, fmt.Errorf("%d bytes is too small for FAT32: it needs at least %d clusters (about 33 MiB)", size, minClusters)
	}
	return l, nil
}

// fitLayout finds the smallest FAT that covers the data clusters left after
// the reserved sectors and the FATs themselves, rounded up to whole clusters
// so the data area starts cluster-aligned (as mkfs.fat does).
func fitLayout(total, spc uint32) layout {
	l := layout{totalSectors: total, secPerClus: spc}
	if total <= reservedSectors {
		return l
	}
	avail := uint64(total - reservedSectors)
	// Upper bound: every available sector a cluster.
	fat := ((avail/uint64(spc)+2)*4 + sectorSize - 1) / sectorSize
	clustersFor := func(fat uint64) uint64 {
		if numFATs*fat >= avail {
			return 0
		}
		return (avail - numFATs*fat) / uint64(spc)
	}
	fits := func(fat uint64) bool { return (clustersFor(fat)+2)*4 <= fat*sectorSize }
	// The bound overshoots by about 2*fat/(spc*128) sectors; walk down.
	for fat > 1 && fits(fat-1) {
		fat--
	}
	fat = (fat + uint64(spc) - 1) / uint64(spc) * uint64(spc)
	l.fatSectors = uint32(fat)
	l.clusters = uint32(min(clustersFor(fat), uint64(maxClusters)+1))
	return l
}

func (l layout) clusterSize() int64 { return int64(l.secPerClus) * sectorSize }

// fatOffset is the byte offset of FAT number i.
func (l layout) fatOffset(i int) int64 {
	return (reservedSectors + int64(i)*int64(l.fatSectors)) * sectorSize
}

// clusterOffset is the byte offset of data cluster c (c >= 2).
func (l layout) clusterOffset(c uint32) int64 {
	return l.fatOffset(numFATs) + int64(c-2)*l.clusterSize()
}

// bootInfo is what the boot sector holds besides the geometry.
type bootInfo struct {
	oem           [8]byte
	label         [11]byte
	volumeID      uint32
	hiddenSectors uint32
	freeClusters  uint32
	nextFree      uint32
}

// reservedRegion encodes sectors 0..7: the boot sector, the FSInfo sector
// and their backups at sectors 6 and 7.
func (l layout) reservedRegion(bi bootInfo) []byte {
	buf := make([]byte, 8*sectorSize)
	b := buf[:sectorSize]
	le := binary.LittleEndian
	copy(b[0:], []byte{0xEB, 0x58, 0x90}) // jmp short 0x5A; nop
	copy(b[3:11], bi.oem[:])
	le.PutUint16(b[11:], sectorSize)
	b[13] = byte(l.secPerClus)
	le.PutUint16(b[14:], reservedSectors)
	b[16] = numFATs
	// 17: root entries 0, 19: total sectors (16 bit) 0.
	b[21] = mediaFixed
	// 22: FAT size (16 bit) 0.
	le.PutUint16(b[24:], 63)  // sectors per track (informational)
	le.PutUint16(b[26:], 255) // heads (informational)
	le.PutUint32(b[28:], bi.hiddenSectors)
	le.PutUint32(b[32:], l.totalSectors)
	le.PutUint32(b[36:], l.fatSectors)
	// 40: flags 0 (FATs mirrored), 42: version 0.0.
	le.PutUint32(b[44:], rootCluster)
	le.PutUint16(b[48:], fsInfoSector)
	le.PutUint16(b[50:], backupBoot)
	b[64] = 0x80 // drive number
	b[66] = 0x29 // extended boot signature
	le.PutUint32(b[67:], bi.volumeID)
	copy(b[71:82], bi.label[:])
	copy(b[82:90], "FAT32   ")
	// Boot code at 0x5A: int 0x18 (no bootable disk: let the BIOS try the
	// next device), then hlt in a loop.
	copy(b[0x5A:], []byte{0xCD, 0x18, 0xF4, 0xEB, 0xFD})
	b[510], b[511] = 0x55, 0xAA

	fi := buf[fsInfoSector*sectorSize : (fsInfoSector+1)*sectorSize]
	le.PutUint32(fi[0:], 0x41615252)
	le.PutUint32(fi[484:], 0x61417272)
	le.PutUint32(fi[488:], bi.freeClusters)
	le.PutUint32(fi[492:], bi.nextFree)
	le.PutUint32(fi[508:], 0xAA550000)

	copy(buf[backupBoot*sectorSize:], buf[:2*sectorSize])
	return buf
}
