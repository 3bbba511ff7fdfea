package ota

import (
	"fmt"
	"strings"
)

// ConfigTxtName is the firmware's configuration file on the boot
// partition; TryBootName is the one it reads once after a "0 tryboot"
// reboot.
const (
	ConfigTxtName = "config.txt"
	TryBootName   = "tryboot.txt"
)

// Slots are "a" and "b". The image package has the same numbering; this
// package repeats it so that the init need not link the image writers.

// SlotPartition returns the partition number of root slot "a" (2) or "b"
// (3).
func SlotPartition(slot string) (int, error) {
	switch slot {
	case "a":
		return 2, nil
	case "b":
		return 3, nil
	}
	return 0, fmt.Errorf("unknown slot %q: want a or b", slot)
}

// SlotDir is the slot's folder on the boot partition ("slot-a").
func SlotDir(slot string) string { return "slot-" + slot }

// Other returns the slot that is not slot.
func Other(slot string) string {
	if slot == "a" {
		return "b"
	}
	return "a"
}

// ConfigSlot returns the slot a config.txt boots: the last os_prefix=
// line naming slot-a/ or slot-b/. ok is false when it names neither.
func ConfigSlot(cfg string) (slot string, ok bool) {
	for _, l := range strings.Split(cfg, "\n") {
		k, v, found := strings.Cut(strings.TrimSpace(l), "=")
		if !found || strings.TrimSpace(k) != "os_prefix" {
			continue
		}
		switch strings.TrimSuffix(strings.TrimSpace(v), "/") {
		case SlotDir("a"):
			slot, ok = "a", true
		case SlotDir("b"):
			slot, ok = "b", true
		default:
			slot, ok = "", false
		}
	}
	return slot, ok
}

// ConfigFor returns cfg with every os_prefix= line naming slot's folder.
func ConfigFor(cfg, slot string) (string, error) {
	if _, err := SlotPartition(slot); err != nil {
		return "", err
	}
	lines := strings.SplitAfter(cfg, "\n")
	n := 0
	for i, l := range lines {
		k, _, found := strings.Cut(strings.TrimSpace(l), "=")
		if found && strings.TrimSpace(k) == "os_prefix" {
			nl := ""
			if strings.HasSuffix(l, "\n") {
				nl = "\n"
			}
			lines[i] = "os_prefix=" + SlotDir(slot) + "/" + nl
			n++
		}
	}
	if n == 0 {
		return "", fmt.Errorf("config.txt has no os_prefix= line")
	}
	return strings.Join(lines, ""), nil
}

// CmdlineFor returns cmdline with its root= word replaced by the PARTUUID
// of slot's partition on the disk with identifier diskID, and a final
// newline.
func CmdlineFor(cmdline string, diskID uint32, slot string) (string, error) {
	n, err := SlotPartition(slot)
	if err != nil {
		return "", err
	}
	if diskID == 0 {
		return "", fmt.Errorf("disk identifier 0: PARTUUIDs need a set identifier")
	}
	words := strings.Fields(cmdline)
	found := false
	for i, w := range words {
		if strings.HasPrefix(w, "root=") {
			words[i] = fmt.Sprintf("root=PARTUUID=%08x-%02x", diskID, n)
			found = true
		}
	}
	if !found {
		return "", fmt.Errorf("kernel command line has no root= word")
	}
	return strings.Join(words, " ") + "\n", nil
}
