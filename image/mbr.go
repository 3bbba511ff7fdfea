package image

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SectorSize is the logical sector size of every image we write.
const SectorSize = 512

// Partition types in the MBR.
const (
	TypeFAT32LBA byte = 0x0c // what the Pi firmware expects for the boot partition
	TypeLinux    byte = 0x83
	TypeEmpty    byte = 0x00
)

// MBRPartition is one primary entry of a DOS partition table.
type MBRPartition struct {
	Bootable bool
	Type     byte
	Start    uint32 // first sector (LBA)
	Sectors  uint32 // length in sectors
}

// MBR is a classic DOS partition table with a disk identifier. The disk
// identifier (bytes 440–443) is what Linux combines with the partition
// number into PARTUUID=xxxxxxxx-NN, so it must never be zero.
type MBR struct {
	DiskID     uint32
	Partitions [4]MBRPartition
}

// chs is the CHS address used for every LBA beyond what CHS can express.
// Linux and the Pi firmware use the LBA fields; this is what fdisk writes for
// large disks.
var chsMax = [3]byte{0xfe, 0xff, 0xff}

// lbaToCHS converts an LBA to the packed CHS triple with the geometry
// fdisk assumes (255 heads, 63 sectors per track), saturating when out of range.
func lbaToCHS(lba uint32) [3]byte {
	const heads, sectors = 255, 63
	c := lba / (heads * sectors)
	if c > 1023 {
		return chsMax
	}
	h := (lba / sectors) % heads
	s := lba%sectors + 1
	return [3]byte{byte(h), byte(s) | byte((c>>2)&0xc0), byte(c)}
}

// Marshal returns the 512-byte sector 0.
func (m *MBR) Marshal() ([]byte, error) {
	if m.DiskID == 0 {
		return nil, errors.New("MBR disk identifier must not be zero: PARTUUIDs depend on it")
	}
	b := make([]byte, SectorSize)
	binary.LittleEndian.PutUint32(b[440:], m.DiskID)
	for i, p := range m.Partitions {
		if p.Type == TypeEmpty {
			continue
		}
		if p.Sectors == 0 {
			return nil, fmt.Errorf("partition %d: zero length", i+1)
		}
		e := b[446+16*i : 446+16*(i+1)]
		if p.Bootable {
			e[0] = 0x80
		}
		first := lbaToCHS(p.Start)
		last := lbaToCHS(p.Start + p.Sectors - 1)
		copy(e[1:4], first[:])
		e[4] = p.Type
		copy(e[5:8], last[:])
		binary.LittleEndian.PutUint32(e[8:], p.Start)
		binary.LittleEndian.PutUint32(e[12:], p.Sectors)
	}
	b[510], b[511] = 0x55, 0xaa
	return b, nil
}

// ParseMBR decodes sector 0 of a disk image.
func ParseMBR(b []byte) (*MBR, error) {
	if len(b) < SectorSize {
		return nil, fmt.Errorf("reading MBR: need %d bytes, have %d", SectorSize, len(b))
	}
	if b[510] != 0x55 || b[511] != 0xaa {
		return nil, errors.New("reading MBR: no boot signature 55 aa at offset 510")
	}
	m := &MBR{DiskID: binary.LittleEndian.Uint32(b[440:])}
	for i := range m.Partitions {
		e := b[446+16*i : 446+16*(i+1)]
		m.Partitions[i] = MBRPartition{
			Bootable: e[0] == 0x80,
			Type:     e[4],
			Start:    binary.LittleEndian.Uint32(e[8:]),
			Sectors:  binary.LittleEndian.Uint32(e[12:]),
		}
	}
	return m, nil
}

// PartUUID returns the Linux PARTUUID of partition n (1-based) on a disk with
// identifier id, as the kernel command line spells it.
func PartUUID(id uint32, n int) string {
	return fmt.Sprintf("%08x-%02x", id, n)
}
