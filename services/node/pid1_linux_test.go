package node

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiskWithID(t *testing.T) {
	dir := t.TempDir()
	sys, dev := filepath.Join(dir, "sys", "block"), filepath.Join(dir, "dev")
	disks := map[string]uint32{"ram0": 0x1a2b3c4d, "mmcblk0": 0x11111111, "mmcblk0boot0": 0x1a2b3c4d, "sda": 0x1a2b3c4d, "sdb": 0}
	for name, id := range disks {
		if err := os.MkdirAll(filepath.Join(sys, name), 0o755); err != nil {
			t.Fatal(err)
		}
		sector := make([]byte, 512)
		if id != 0 {
			binary.LittleEndian.PutUint32(sector[440:], id)
			sector[510], sector[511] = 0x55, 0xAA
		}
		writeFile(t, filepath.Join(dev, name), string(sector))
	}
	tests := []struct {
		id   uint32
		want string
	}{
		{0x1a2b3c4d, "sda"}, // not ram0, not the eMMC boot area
		{0x11111111, "mmcblk0"},
		{0x22222222, ""},
		{0, ""}, // sdb has no MBR signature
	}
	for _, tt := range tests {
		if got := diskWithID(sys, dev, tt.id); got != tt.want {
			t.Errorf("diskWithID(%08x) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

// TestBootSteps pins the boot sequence: its order and which steps stop the
// boot when they fail.
func TestBootSteps(t *testing.T) {
	var got []string
	for _, s := range bootSteps() {
		got = append(got, fmt.Sprintf("%v %s", s.required, s.name))
	}
	want := `true mount proc at /proc
true mount sysfs at /sys
true mount devtmpfs at /dev
false open the console
false load kernel modules
true switch to the root partition
false mount devpts at /dev/pts
false mount tmpfs at /tmp
true mount tmpfs at /run
false mount tmpfs at /etc
true find the boot disk
false mount the boot partition at /boot
false mount the data partition at /data
false check for an update on trial
true load the overlay
false check the data partition and its secrets`
	if g := strings.Join(got, "\n"); g != want {
		t.Errorf("boot steps:\n%s\nwant:\n%s", g, want)
	}
}
