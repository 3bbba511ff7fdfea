package node

import (
	"encoding/binary"
	"testing"
)

func TestParseRoot(t *testing.T) {
	tests := []struct {
		cmdline string
		want    Root
		slot    string
		wantErr bool
	}{
		{"console=ttyS0,115200 console=tty1 root=PARTUUID=1a2b3c4d-02 rootfstype=squashfs ro rootwait init=/init panic=10 oops=panic",
			Root{DiskID: 0x1a2b3c4d, Partition: 2}, "a", false},
		{"root=PARTUUID=DEADBEEF-03 ro", Root{DiskID: 0xdeadbeef, Partition: 3}, "b", false},
		{"root=/dev/sda2 root=PARTUUID=00000001-02\n", Root{DiskID: 1, Partition: 2}, "a", false},
		{"root=PARTUUID=00000001-04", Root{DiskID: 1, Partition: 4}, "", false},
		{"console=tty1", Root{}, "", true},
		{"root=/dev/mmcblk0p2", Root{}, "", true},
		{"root=PARTUUID=1a2b3c4d", Root{}, "", true},
		{"root=PARTUUID=1a2b3c4-02", Root{}, "", true},
		{"root=PARTUUID=1a2b3c4g-02", Root{}, "", true},
		{"root=PARTUUID=1a2b3c4d-05", Root{}, "", true},
		{"root=PARTUUID=1a2b3c4d-00", Root{}, "", true},
		{"root=PARTUUID=1a2b3c4d-002", Root{}, "", true},
		{"root=PARTUUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", Root{}, "", true}, // GPT form
	}
	for _, tt := range tests {
		got, err := ParseRoot(tt.cmdline)
		if (err != nil) != tt.wantErr || got != tt.want || got.Slot() != tt.slot {
			t.Errorf("ParseRoot(%q) = %+v (slot %q), %v; want %+v (slot %q), error %v",
				tt.cmdline, got, got.Slot(), err, tt.want, tt.slot, tt.wantErr)
		}
	}
}

func FuzzParseRoot(f *testing.F) {
	f.Add("console=ttyS0,115200 root=PARTUUID=1a2b3c4d-02 rootfstype=squashfs ro")
	f.Add("root=PARTUUID=ffffffff-03")
	f.Add("root=PARTUUID=-")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRoot(s)
		if err == nil && (r.Partition < 1 || r.Partition > 4) {
			t.Errorf("ParseRoot(%q) accepted partition %d", s, r.Partition)
		}
	})
}

func TestPartitionDevice(t *testing.T) {
	tests := []struct {
		dev  string
		n    int
		want string
	}{
		{"mmcblk0", 1, "mmcblk0p1"},
		{"mmcblk1", 4, "mmcblk1p4"},
		{"nvme0n1", 2, "nvme0n1p2"},
		{"sda", 1, "sda1"},
		{"vda", 4, "vda4"},
	}
	for _, tt := range tests {
		if got := PartitionDevice(tt.dev, tt.n); got != tt.want {
			t.Errorf("PartitionDevice(%q, %d) = %q, want %q", tt.dev, tt.n, got, tt.want)
		}
	}
}

func TestMBRDiskID(t *testing.T) {
	sector := make([]byte, 512)
	binary.LittleEndian.PutUint32(sector[440:], 0x1a2b3c4d)
	if _, ok := mbrDiskID(sector); ok {
		t.Error("a sector without 55 AA was taken for an MBR")
	}
	sector[510], sector[511] = 0x55, 0xAA
	if id, ok := mbrDiskID(sector); !ok || id != 0x1a2b3c4d {
		t.Errorf("mbrDiskID = %08x, %v", id, ok)
	}
	if _, ok := mbrDiskID(sector[:100]); ok {
		t.Error("a short read was taken for an MBR")
	}
}

func TestWholeDisk(t *testing.T) {
	for name, want := range map[string]bool{
		"mmcblk0": true, "sda": true, "vda": true, "nvme0n1": true,
		"loop0": true, "ram0": false, "zram0": false, "dm-0": false, "mmcblk0boot0": false, "mmcblk0rpmb": false, "md0": false,
	} {
		if got := wholeDisk(name); got != want {
			t.Errorf("wholeDisk(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRoleServices(t *testing.T) {
	for role, want := range map[string]string{"lbmaster": "balancer vip", "lbbackup": "balancer vip", "web": "web mirror", "other": ""} {
		got := ""
		for i, s := range RoleServices(role) {
			if i > 0 {
				got += " "
			}
			got += s
		}
		if got != want {
			t.Errorf("RoleServices(%q) = %q, want %q", role, got, want)
		}
	}
}
