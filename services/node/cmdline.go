package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Root is the root partition the kernel command line names.
type Root struct {
	// DiskID is the MBR disk signature (bytes 440-443, little-endian).
	DiskID uint32
	// Partition is the 1-based partition number: 2 for slot A, 3 for B.
	Partition int
}

// ParseRoot finds root=PARTUUID=XXXXXXXX-NN on a kernel command line (the
// MBR form: 8 hex digits of disk id, then the partition number in hex).
func ParseRoot(cmdline string) (Root, error) {
	var val string
	found := false
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "root="); ok {
			val, found = v, true // the last one wins, as in the kernel
		}
	}
	if !found {
		return Root{}, errors.New("kernel command line has no root=")
	}
	uuid, ok := strings.CutPrefix(val, "PARTUUID=")
	if !ok {
		return Root{}, fmt.Errorf("root=%s: want root=PARTUUID=<8 hex digits>-<partition>", val)
	}
	id, part, ok := strings.Cut(uuid, "-")
	if !ok || len(id) != 8 || len(part) == 0 || len(part) > 2 {
		return Root{}, fmt.Errorf("root=%s: want PARTUUID=<8 hex digits>-<2 hex digits>", val)
	}
	disk, err := strconv.ParseUint(id, 16, 32)
	if err != nil {
		return Root{}, fmt.Errorf("root=%s: disk id is not hex", val)
	}
	p, err := strconv.ParseUint(part, 16, 8)
	if err != nil || p < 1 || p > 4 {
		return Root{}, fmt.Errorf("root=%s: partition must be 01..04", val)
	}
	return Root{DiskID: uint32(disk), Partition: int(p)}, nil
}

// Slot returns "a" for partition 2, "b" for partition 3, else "".
func (r Root) Slot() string {
	switch r.Partition {
	case 2:
		return "a"
	case 3:
		return "b"
	}
	return ""
}

// PartitionDevice names partition n of the whole disk dev as the kernel
// does: mmcblk0 -> mmcblk0p1, nvme0n1 -> nvme0n1p1, sda -> sda1.
func PartitionDevice(dev string, n int) string {
	if dev != "" && dev[len(dev)-1] >= '0' && dev[len(dev)-1] <= '9' {
		return fmt.Sprintf("%sp%d", dev, n)
	}
	return fmt.Sprintf("%s%d", dev, n)
}

// mbrDiskID returns the disk signature of a 512-byte MBR sector, and false
// when the sector has no MBR boot signature (0x55 0xAA).
func mbrDiskID(sector []byte) (uint32, bool) {
	if len(sector) < 512 || sector[510] != 0x55 || sector[511] != 0xAA {
		return 0, false
	}
	return binary.LittleEndian.Uint32(sector[440:444]), true
}

// wholeDisk reports whether a /sys/block entry is a disk worth reading for
// the boot disk (not a RAM, device-mapper, optical or eMMC boot area
// device). Loop devices count: tests boot from a disk image on one.
func wholeDisk(name string) bool {
	for _, p := range []string{"ram", "zram", "dm-", "md", "sr", "fd", "nbd"} {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return !strings.Contains(name, "boot") && !strings.HasSuffix(name, "rpmb")
}
