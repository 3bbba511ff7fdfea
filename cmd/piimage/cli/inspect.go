package cli

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/fat32"
	"github.com/piimage/piimage/image/ota/otaimage"
)

func inspectCommand() command {
	return command{
		name:  "inspect",
		short: "show what is in an image: partitions, slots, board, versions, overlay",
		run:   runInspect,
	}
}

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("inspect", "inspect IMAGE", stderr)
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &usageError{"inspect: name one image file"}
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return inspect(stdout, f, st.Size(), pos[0])
}

func inspect(w io.Writer, r io.ReaderAt, size int64, name string) error {
	sector := make([]byte, image.SectorSize)
	if _, err := r.ReadAt(sector, 0); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	m, err := image.ParseMBR(sector)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(w, "image %s: %d MiB, disk identifier 0x%08x\n\npartitions:\n", name, size>>20, m.DiskID)
	labels := [4]string{"boot (FAT32)", "root slot A", "root slot B", "data"}
	for i, p := range m.Partitions {
		if p.Type == image.TypeEmpty {
			continue
		}
		off := int64(p.Start) * image.SectorSize
		ln := int64(p.Sectors) * image.SectorSize
		fmt.Fprintf(w, "  p%d  %-13s PARTUUID=%s  start %6d MiB  size %5d MiB  type 0x%02x  %s\n",
			i+1, labels[i], image.PartUUID(m.DiskID, i+1), off>>20, ln>>20, p.Type, describeFS(r, off))
	}
	boot := m.Partitions[image.PartBoot-1]
	bfs, err := fat32.Open(io.NewSectionReader(r, int64(boot.Start)*image.SectorSize, int64(boot.Sectors)*image.SectorSize), int64(boot.Sectors)*image.SectorSize)
	if err != nil {
		return fmt.Errorf("reading the boot partition: %w", err)
	}
	cfg, _ := fs.ReadFile(bfs, "config.txt")
	active := strings.TrimSuffix(configValue(string(cfg), "os_prefix"), "/")
	fmt.Fprintf(w, "\nslots (config.txt os_prefix=%s/):\n", active)
	img, _ := otaimage.Open(r)
	for _, slot := range []string{"a", "b"} {
		dir := image.SlotDir(slot)
		mark := " "
		if dir == active {
			mark = "*"
		}
		rel, err := fs.ReadFile(bfs, dir+"/release.json")
		if err != nil {
			fmt.Fprintf(w, " %s %s: empty\n", mark, dir)
			continue
		}
		var info map[string]any
		if err := json.Unmarshal(rel, &info); err != nil {
			fmt.Fprintf(w, " %s %s: unreadable release.json: %v\n", mark, dir, err)
			continue
		}
		fmt.Fprintf(w, " %s %s: version %v, board %v, built %v\n", mark, dir, info["version"], info["board"], info["built"])
		fmt.Fprintf(w, "     kernel   %v\n     firmware %v\n", info["kernel"], info["firmware"])
		if cl, err := fs.ReadFile(bfs, dir+"/cmdline.txt"); err == nil {
			fmt.Fprintf(w, "     cmdline  %s\n", strings.TrimSpace(string(cl)))
		}
		describeSlotSignature(w, bfs, img, slot)
	}
	describeOTAState(w, bfs)
	overlay, err := fs.ReadFile(bfs, "node.yaml")
	if err != nil {
		fmt.Fprintf(w, "\noverlay: none on the boot partition (%v)\n", err)
		return nil
	}
	describeOverlay(w, overlay) // inspect_overlay.go: secrets masked, then the firewall ruleset
	return nil
}

// configValue returns the last value of key in a config.txt.
func configValue(cfg, key string) string {
	v := ""
	for _, l := range strings.Split(cfg, "\n") {
		if k, val, ok := strings.Cut(strings.TrimSpace(l), "="); ok && k == key {
			v = val
		}
	}
	return v
}

// describeFS names the filesystem at off from its superblock.
func describeFS(r io.ReaderAt, off int64) string {
	b := make([]byte, 2048)
	if _, err := r.ReadAt(b, off); err != nil {
		return "unreadable"
	}
	switch {
	case string(b[:4]) == "hsqs":
		comp := map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}[binary.LittleEndian.Uint16(b[20:])]
		used := binary.LittleEndian.Uint64(b[40:])
		return fmt.Sprintf("squashfs %s, %.1f MB used", comp, float64(used)/1e6)
	case binary.LittleEndian.Uint16(b[1024+0x38:]) == 0xef53:
		label := strings.TrimRight(string(b[1024+0x78:1024+0x88]), "\x00")
		return fmt.Sprintf("ext4 label %q", label)
	case string(b[82:87]) == "FAT32":
		return fmt.Sprintf("FAT32 label %q", strings.TrimSpace(string(b[71:82])))
	}
	for _, c := range b[:512] {
		if c != 0 {
			return "unknown"
		}
	}
	return "empty"
}
