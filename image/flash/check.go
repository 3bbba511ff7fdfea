package flash

import (
	"fmt"
	"strings"
)

// DefaultMaxSize is the largest disk Check accepts unless told otherwise:
// SD cards for a Pi are smaller, and a larger disk is more likely a backup
// drive plugged in by USB.
const DefaultMaxSize = 256_000_000_000

// Policy is what Check accepts.
type Policy struct {
	// MaxSize is the largest disk accepted; 0 means DefaultMaxSize.
	MaxSize int64
	// ImageSize is the image to write; a smaller disk is refused.
	ImageSize int64
}

// Problem is one reason not to write a device, and what to do about it.
type Problem struct {
	Why, Do string
}

// RefusedError lists why a device may not be written.
type RefusedError struct {
	Device   string
	Problems []Problem
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "refusing to write %s:", e.Device)
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  - %s: %s", p.Why, p.Do)
	}
	return b.String()
}

// Check returns a *RefusedError listing every reason why d must not be
// overwritten with an image: a partition rather than a whole disk; a disk
// that is not removable by the rule of System.classify (removable=1, an SD
// card on the MMC bus, or a loop device over a regular file); larger than
// the policy's maximum or smaller than the image; write-protected; holding
// the running system (the root filesystem or active swap); mounted; or
// used by device mapper, RAID or LVM. It returns nil when d may be written.
func Check(d *Device, p Policy) error {
	if p.MaxSize == 0 {
		p.MaxSize = DefaultMaxSize
	}
	var probs []Problem
	add := func(why, do string, args ...any) {
		probs = append(probs, Problem{Why: why, Do: fmt.Sprintf(do, args...)})
	}
	if d.Partition {
		add(fmt.Sprintf("%s is a partition of %s, not a whole disk", d.Name, d.Parent),
			"name the whole disk, --device /dev/%s (the image brings its own partition table)", d.Parent)
		return &RefusedError{Device: d.Describe(), Problems: probs}
	}
	if len(d.System) > 0 {
		add("it holds the running system ("+strings.Join(d.System, "; ")+")",
			"this is this computer's own disk; insert the SD card and run piimage flash --list to find it")
	}
	if !d.Removable {
		add("it is not removable ("+d.RemovableWhy+")",
			"piimage writes only removable media (USB card readers, SD cards); run piimage flash --list to see which disks qualify")
	}
	if d.Size > p.MaxSize {
		do := fmt.Sprintf("a card that large is unusual; if this really is the card, pass --max-size %s", roundUpSize(d.Size))
		if len(d.System) > 0 || !d.Removable {
			do = "a card is smaller; this disk is not one (see above)"
		}
		add(fmt.Sprintf("it is %s, larger than the %s limit", FormatSize(d.Size), FormatSize(p.MaxSize)), "%s", do)
	}
	if p.ImageSize > 0 && d.Size < p.ImageSize {
		add(fmt.Sprintf("it is %s, smaller than the %s image", FormatSize(d.Size), FormatSize(p.ImageSize)),
			"use a larger card")
	}
	if d.ReadOnly {
		add("it is write-protected", "slide the lock switch on the SD card (or its adapter) away from LOCK and insert it again")
	}
	if len(d.Mounts) > 0 {
		add("it is mounted ("+strings.Join(d.Mounts, "; ")+")",
			"unmount every partition first (umount /dev/%sN, or eject it in the file manager without removing the card)", d.Name)
	}
	if len(d.Holders) > 0 {
		add("it is in use by "+strings.Join(d.Holders, ", ")+" (device mapper, RAID or LVM)",
			"stop what uses it (dmsetup remove, mdadm --stop, vgchange -an) before flashing")
	}
	if len(probs) == 0 {
		return nil
	}
	return &RefusedError{Device: d.Describe(), Problems: probs}
}

// roundUpSize is a --max-size value just above n, in whole GB.
func roundUpSize(n int64) string {
	return fmt.Sprintf("%dG", (n+999_999_999)/1_000_000_000)
}

// RefuseForeignPath returns an error for device paths of other systems
// (macOS /dev/diskN and /dev/rdiskN), which piimage does not write yet.
func RefuseForeignPath(path string) error {
	base := path
	if i := strings.LastIndex(path, "/"); i >= 0 {
		base = path[i+1:]
	}
	if strings.HasPrefix(path, "/dev/") && (strings.HasPrefix(base, "disk") || strings.HasPrefix(base, "rdisk")) &&
		len(base) > 4 && strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(base, "r"), "disk"), "0123456789s") == "" {
		return fmt.Errorf("%s is a macOS disk path; piimage flash writes cards from Linux only for now: on a Mac, write the image with "+
			"'diskutil unmountDisk /dev/diskN' and 'dd if=IMAGE of=/dev/rdiskN bs=4m', or use piimage on a Linux machine", path)
	}
	return nil
}
