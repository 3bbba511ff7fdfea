package image

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/piimage/piimage/image/ext4"
	"github.com/piimage/piimage/image/fat32"
	"github.com/piimage/piimage/image/squashfs"
)

// Plan is everything that goes into one image. The stages of Write each take
// what they need from it.
type Plan struct {
	Layout Layout
	// Boot is the tree of the FAT32 boot partition.
	Boot fs.FS
	// Root is the tree of root slot A. Slot B is left empty.
	Root fs.FS
	// Data is the tree of the ext4 data partition.
	Data fs.FS
	// ModTime stamps every file and filesystem, so that the same plan
	// gives the same bytes.
	ModTime time.Time
	// DataUUID and DataHashSeed identify the data filesystem.
	DataUUID     [16]byte
	DataHashSeed [16]byte
	// BootVolumeID identifies the FAT (shown as its serial number).
	BootVolumeID uint32
}

// Result says what Write produced.
type Result struct {
	Path     string
	Size     int64
	RootUsed int64 // bytes of the root squashfs
	// Stages lists how long each stage took, in order.
	Stages []StageTime
}

// StageTime is how long one stage of Write took.
type StageTime struct {
	Name string
	Took time.Duration
}

// stage is one step of writing an image.
type stage struct {
	name string
	run  func(w io.WriterAt, p *Plan, ext [4]Extent, r *Result) error
}

var stages = []stage{
	{"partition table", writeMBR},
	{"boot partition (FAT32)", writeBoot},
	{"root slot A (squashfs)", writeRoot},
	{"data partition (ext4)", writeData},
}

// Write builds the image described by p at path. It writes to a temporary
// file in the same folder and renames it into place only when every stage
// succeeded, so a failed build never leaves a half image at path.
func Write(ctx context.Context, path string, p *Plan) (*Result, error) {
	ext, err := p.Layout.Extents()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating output folder: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating temporary image: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// A sparse file reads as zeros: the writers rely on that and write only
	// what the formats need.
	if err := f.Truncate(p.Layout.Size()); err != nil {
		return nil, fmt.Errorf("sizing temporary image %s: %w", tmp, err)
	}
	r := &Result{Path: path, Size: p.Layout.Size()}
	for _, s := range stages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		if err := s.run(f, p, ext, r); err != nil {
			return nil, fmt.Errorf("writing %s: %w", s.name, err)
		}
		r.Stages = append(r.Stages, StageTime{s.name, time.Since(start)})
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("moving image into place: %w", err)
	}
	ok = true
	return r, nil
}

func writeMBR(w io.WriterAt, p *Plan, _ [4]Extent, _ *Result) error {
	m, err := p.Layout.MBR()
	if err != nil {
		return err
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	_, err = w.WriteAt(b, 0)
	return err
}

func part(w io.WriterAt, e Extent) io.WriterAt {
	return io.NewOffsetWriter(w, e.Offset)
}

func writeBoot(w io.WriterAt, p *Plan, ext [4]Extent, _ *Result) error {
	return fat32.Write(part(w, ext[PartBoot-1]), ext[PartBoot-1].Size, p.Boot, fat32.Options{
		Label:         "PIBOOT",
		VolumeID:      p.BootVolumeID,
		ModTime:       p.ModTime,
		HiddenSectors: uint32(ext[PartBoot-1].Offset / SectorSize),
	})
}

func writeRoot(w io.WriterAt, p *Plan, ext [4]Extent, r *Result) error {
	e := ext[PartRootA-1]
	n, err := squashfs.Write(part(w, e), p.Root, squashfs.Options{
		ModTime: p.ModTime,
		MaxSize: e.Size,
	})
	r.RootUsed = n
	return err
}

func writeData(w io.WriterAt, p *Plan, ext [4]Extent, _ *Result) error {
	e := ext[PartData-1]
	return ext4.Write(part(w, e), e.Size, p.Data, ext4.Options{
		Label:    "data",
		UUID:     p.DataUUID,
		HashSeed: p.DataHashSeed,
		ModTime:  p.ModTime,
	})
}
