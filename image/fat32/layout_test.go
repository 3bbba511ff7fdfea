package fat32

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestLayout(t *testing.T) {
	tests := []struct {
		mib      int64
		spc      int
		wantSPC  uint32
		clusters uint32
		fat      uint32
	}{
		{33, 0, 1, 66512, 520},
		{64, 0, 1, 129022, 1009},
		{256, 0, 1, 516190, 4033},
		{260, 0, 1, 524256, 4096},
		{261, 0, 8, 66680, 528},
		{512, 0, 8, 130812, 1024},
		{2048, 0, 8, 523262, 4088},
		{9 << 10, 0, 16, 1178494, 9216},
		{256, 2, 2, 260094, 2034},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dMiB/%d", tt.mib, tt.spc), func(t *testing.T) {
			l, err := newLayout(tt.mib*mib, tt.spc)
			if err != nil {
				t.Fatal(err)
			}
			if l.secPerClus != tt.wantSPC || l.clusters != tt.clusters || l.fatSectors != tt.fat {
				t.Errorf("got spc %d, %d clusters, FAT %d sectors; want %d, %d, %d",
					l.secPerClus, l.clusters, l.fatSectors, tt.wantSPC, tt.clusters, tt.fat)
			}
			checkLayout(t, l)
		})
	}
}

// checkLayout checks the invariants of a layout.
func checkLayout(t *testing.T, l layout) {
	t.Helper()
	if l.clusters < minClusters || l.clusters > maxClusters {
		t.Errorf("%d clusters is not FAT32", l.clusters)
	}
	if uint64(l.clusters+2)*4 > uint64(l.fatSectors)*sectorSize {
		t.Errorf("FAT of %d sectors cannot map %d clusters", l.fatSectors, l.clusters)
	}
	if l.fatSectors%l.secPerClus != 0 {
		t.Errorf("FAT of %d sectors is not cluster-aligned", l.fatSectors)
	}
	end := uint64(l.clusterOffset(l.clusters+2)) / sectorSize
	if end > uint64(l.totalSectors) {
		t.Errorf("data ends at sector %d, beyond %d", end, l.totalSectors)
	}
	// The FAT is the smallest aligned one: one cluster less would not do.
	if smaller := l.fatSectors - l.secPerClus; smaller > 0 {
		avail := uint64(l.totalSectors - reservedSectors - numFATs*smaller)
		if (avail/uint64(l.secPerClus)+2)*4 <= uint64(smaller)*sectorSize {
			t.Errorf("FAT of %d sectors would do", smaller)
		}
	}
}

// TestLayoutAllSizes checks the invariants for every MiB from 33 to 2048.
func TestLayoutAllSizes(t *testing.T) {
	for m := int64(33); m <= 2048; m++ {
		l, err := newLayout(m*mib, 0)
		if err != nil {
			t.Fatalf("%d MiB: %v", m, err)
		}
		checkLayout(t, l)
	}
	if _, err := newLayout(32*mib, 0); err == nil {
		t.Error("32 MiB: no error, but it cannot hold 65525 clusters")
	}
}

// TestLayoutMatchesMkfs compares the cluster size with mkfs.fat's choice.
func TestLayoutMatchesMkfs(t *testing.T) {
	mkfs := needTool(t, "mkfs.fat")
	for _, m := range []int64{64, 129, 256, 260, 261, 512, 1024} {
		img := filepath.Join(t.TempDir(), "mkfs.img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, m*mib); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(mkfs, "-F", "32", img).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.fat: %v\n%s", err, out)
		}
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		var b [512]byte
		_, err = f.ReadAt(b[:], 0)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		l, err := newLayout(m*mib, 0)
		if err != nil {
			t.Fatal(err)
		}
		if l.secPerClus != uint32(b[13]) || binary.LittleEndian.Uint16(b[14:]) != reservedSectors {
			t.Errorf("%d MiB: %d sectors per cluster, mkfs.fat chose %d (reserved %d)",
				m, l.secPerClus, b[13], binary.LittleEndian.Uint16(b[14:]))
		}
	}
}
