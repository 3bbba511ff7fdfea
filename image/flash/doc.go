// Package flash writes a piimage SD-card image to a card, safely, fast and
// verified, optionally changing the node's overlay on the way.
//
// # Choosing the device
//
// System.Lookup describes a /dev path from sysfs (/sys/dev/block/MAJ:MIN,
// /sys/class/block/NAME) and /proc/self/mountinfo and /proc/swaps; Check
// refuses it, with what to do, when it is a partition, not removable, larger
// than a limit (256 GB by default) or smaller than the image, write-protected,
// holding the running system (the disk under "/" or any active swap, through
// partitions and device-mapper slaves), mounted (any partition, matched by
// major:minor, or by /dev source for anonymous devices), or held by device
// mapper, RAID or LVM. OpenDevice then opens it with O_EXCL, which the
// kernel refuses for a mounted or claimed disk, and re-checks that the path
// is still the same device with the same size.
//
// "Removable" means: sysfs removable=1 (USB readers and sticks); or an
// mmcblkN disk whose card type (device/type) is "SD" — SD cards in built-in
// readers show removable=0, yet they are the cards this tool is for, while
// type "MMC" is soldered eMMC and stays refused; or a loop device backed by
// a regular file (writing it writes the file; tests and benchmarks use
// these). macOS paths (/dev/diskN, /dev/rdiskN) are refused with advice.
//
// # Writing
//
// Write reads the image in 4 MiB chunks in one goroutine (hashing each
// with SHA-256) while writing the previous one in another: large aligned
// writes with O_DIRECT, and an fsync at the end (which also flushes the
// device's cache). The first chunk, with the partition table, is blanked
// before and written after all others, so an interrupted card has no
// partition table. Pieces of 64 KiB that are all zeros are left unwritten
// only where the target is known to read back zeros: a file CreateFile just
// made (the copy is sparse), or a device whose queue offloads write-zeroes,
// which gets BLKZEROOUT; everywhere else they are written. The free blocks
// of the ext4 data partition are not written at all (Image.Extents): no
// reader looks at them.
//
// Verification drops the device's page cache (BLKFLSBUF) and reads the card
// back with O_DIRECT (a file: posix_fadvise DONTNEED), comparing every
// written chunk's SHA-256 with the image's; a mismatch is reported at the
// first differing byte. Write returns a Result only after verification.
//
// # Changing the node
//
// Image holds in-memory changes over the image file. ReplaceBootFile
// replaces node.yaml on the FAT in place (image/fat32 FS.Replace), so one
// role image becomes any node's card. The data partition's last good copy
// is replaced only by ReplaceData, which rebuilds the ext4 from scratch and
// therefore refuses data partitions holding more than the overlay (a web
// root): piimage has no ext4 reader to carry files over. Where it is not
// replaced, the init updates it at first boot from the valid FAT copy; until
// then a card whose FAT copy breaks would fall back to the image's original
// overlay. ReplaceData with a larger end also grows the data partition to
// fill the card (updating the MBR).
package flash
