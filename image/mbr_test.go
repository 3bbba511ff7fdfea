package image

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

func TestDefaultLayoutMBRGolden(t *testing.T) {
	m, err := Layout{DiskID: 0x2e0a1b3c}.MBR()
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("testdata/default-layout.mbr.hex")
	if err != nil {
		t.Fatal(err)
	}
	var hexText strings.Builder
	for _, l := range strings.Split(string(golden), "\n") {
		if !strings.HasPrefix(l, "#") {
			hexText.WriteString(strings.TrimSpace(l))
		}
	}
	want, err := hex.DecodeString(hexText.String())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("MBR differs from testdata/default-layout.mbr.hex:\n got %x\nwant %x", b[440:], want[440:])
	}
	back, err := ParseMBR(b)
	if err != nil {
		t.Fatal(err)
	}
	if *back != *m {
		t.Errorf("ParseMBR(Marshal(m)) = %+v, want %+v", back, m)
	}
}

func TestLayoutExtents(t *testing.T) {
	ext, err := Layout{DiskID: 1}.Extents()
	if err != nil {
		t.Fatal(err)
	}
	want := [4]Extent{
		{4 * MiB, 256 * MiB},
		{260 * MiB, 256 * MiB},
		{516 * MiB, 256 * MiB},
		{772 * MiB, 1028 * MiB},
	}
	if ext != want {
		t.Errorf("Extents = %v, want %v", ext, want)
	}
	if ext[3].Offset+ext[3].Size > 1_900_000_000 {
		t.Errorf("default image (%d bytes) does not fit a 2 GB card", ext[3].Offset+ext[3].Size)
	}
}

func TestLayoutErrors(t *testing.T) {
	for _, l := range []Layout{
		{DiskID: 1, TotalSize: 1000*MiB + 1},
		{DiskID: 1, TotalSize: 700 * MiB},
		{DiskID: 1, BootSize: 3 * MiB},
	} {
		if _, err := l.Extents(); err == nil {
			t.Errorf("Extents(%+v) succeeded, want an error", l)
		}
	}
	if _, err := (&MBR{}).Marshal(); err == nil {
		t.Error("an MBR without disk identifier was accepted")
	}
}

func TestParseMBRRejectsGarbage(t *testing.T) {
	if _, err := ParseMBR(make([]byte, 512)); err == nil {
		t.Error("ParseMBR accepted a sector without 55 aa")
	}
	if _, err := ParseMBR([]byte{1, 2}); err == nil {
		t.Error("ParseMBR accepted a short sector")
	}
}

func FuzzParseMBR(f *testing.F) {
	m, _ := Layout{DiskID: 7}.MBR()
	b, _ := m.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMBR(b)
		if err != nil {
			return
		}
		if _, err := m.Marshal(); err != nil && m.DiskID != 0 {
			for _, p := range m.Partitions {
				if p.Type != 0 && p.Sectors == 0 {
					return
				}
			}
			t.Fatalf("re-marshal failed: %v", err)
		}
	})
}

func TestPartUUID(t *testing.T) {
	if got := PartUUID(0x2e0a1b3c, 2); got != "2e0a1b3c-02" {
		t.Errorf("PartUUID = %q", got)
	}
}
