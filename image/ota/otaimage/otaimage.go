// Package otaimage reads and signs the update payload inside a piimage SD
// image: the slot that config.txt boots (its folder on the FAT and its
// root partition). It is builder-side code: it uses the FAT reader and
// writer, which the init must not link.
package otaimage

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/fat32"
	imgota "github.com/piimage/piimage/image/ota"
)

// Image is an SD image opened for its update payload.
type Image struct {
	r    io.ReaderAt
	mbr  *image.MBR
	boot *fat32.FS
	// Slot is the slot config.txt boots: the one the payload carries.
	Slot string
	// ManifestBytes and Signature are the slot's; nil when unsigned.
	ManifestBytes []byte
	Manifest      *imgota.Manifest
	Signature     *imgota.Signature
}

// Open reads the image's partition table, boot partition and the active
// slot's manifest (when signed).
func Open(r io.ReaderAt) (*Image, error) {
	sector := make([]byte, image.SectorSize)
	if _, err := r.ReadAt(sector, 0); err != nil {
		return nil, fmt.Errorf("reading the partition table: %w", err)
	}
	m, err := image.ParseMBR(sector)
	if err != nil {
		return nil, err
	}
	off, size := extent(m, image.PartBoot)
	bfs, err := fat32.Open(io.NewSectionReader(r, off, size), size)
	if err != nil {
		return nil, fmt.Errorf("reading the boot partition: %w", err)
	}
	img := &Image{r: r, mbr: m, boot: bfs}
	cfg, err := bfs.ReadFile(imgota.ConfigTxtName)
	if err != nil {
		return nil, fmt.Errorf("reading config.txt: %w", err)
	}
	slot, ok := imgota.ConfigSlot(string(cfg))
	if !ok {
		return nil, errors.New("config.txt boots neither slot-a/ nor slot-b/")
	}
	img.Slot = slot
	mb, err := bfs.ReadFile(path.Join(imgota.SlotDir(slot), imgota.ManifestFile))
	if err == nil && len(mb) > 0 {
		man, err := imgota.ParseManifest(mb)
		if err != nil {
			return nil, fmt.Errorf("slot %s: %w", slot, err)
		}
		sb, err := bfs.ReadFile(path.Join(imgota.SlotDir(slot), imgota.SignatureFile))
		if err != nil {
			return nil, fmt.Errorf("slot %s has a manifest but no signature: %w", slot, err)
		}
		sig, err := imgota.ParseSignature(sb)
		if err != nil {
			return nil, fmt.Errorf("slot %s: %w", slot, err)
		}
		img.ManifestBytes, img.Manifest, img.Signature = mb, man, &sig
	}
	return img, nil
}

func extent(m *image.MBR, part int) (int64, int64) {
	p := m.Partitions[part-1]
	return int64(p.Start) * image.SectorSize, int64(p.Sectors) * image.SectorSize
}

// Boot returns the boot partition.
func (img *Image) Boot() fs.FS { return img.boot }

// rootReader returns the slot's root partition.
func (img *Image) rootReader(slot string) (*io.SectionReader, error) {
	n, err := imgota.SlotPartition(slot)
	if err != nil {
		return nil, err
	}
	off, size := extent(img.mbr, n)
	return io.NewSectionReader(img.r, off, size), nil
}

// release is what the manifest takes from the slot's release.json.
type release struct {
	Version string `json:"version"`
	Board   string `json:"board"`
	Built   string `json:"built"`
	TryBoot bool   `json:"tryboot"`
}

// ComputeManifest computes the manifest of the active slot from the image's
// bytes: every file of the slot folder (but cmdline.txt and the manifest
// files), the root filesystem (its squashfs size rounded up to 4 KiB),
// the board, version and build time from release.json, config.txt and the
// kernel command line.
func (img *Image) ComputeManifest() (*imgota.Manifest, error) {
	dir := imgota.SlotDir(img.Slot)
	relJSON, err := img.boot.ReadFile(path.Join(dir, "release.json"))
	if err != nil {
		return nil, fmt.Errorf("reading %s/release.json: %w", dir, err)
	}
	var rel release
	if err := json.Unmarshal(relJSON, &rel); err != nil {
		return nil, fmt.Errorf("reading %s/release.json: %w", dir, err)
	}
	cfg, err := img.boot.ReadFile(imgota.ConfigTxtName)
	if err != nil {
		return nil, err
	}
	cmdline, err := img.boot.ReadFile(path.Join(dir, imgota.CmdlineFile))
	if err != nil {
		return nil, fmt.Errorf("reading %s/cmdline.txt: %w", dir, err)
	}
	m := &imgota.Manifest{
		Format: imgota.Format, Board: rel.Board, Version: rel.Version, Built: rel.Built, TryBoot: rel.TryBoot,
		ConfigTxt: string(cfg), Cmdline: strings.TrimSpace(string(cmdline)),
	}
	err = fs.WalkDir(img.boot, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(p, dir+"/")
		switch strings.ToLower(rel) {
		case imgota.ManifestFile, imgota.SignatureFile, imgota.CmdlineFile:
			return nil
		}
		data, err := img.boot.ReadFile(p)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, imgota.File{Path: rel, Size: int64(len(data)), SHA256: sha256.Sum256(data)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading slot folder %s: %w", dir, err)
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	root, err := img.rootReader(img.Slot)
	if err != nil {
		return nil, err
	}
	used, err := squashfsSize(root)
	if err != nil {
		return nil, fmt.Errorf("root slot %s: %w", img.Slot, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(root, 0, used)); err != nil {
		return nil, fmt.Errorf("reading root slot %s: %w", img.Slot, err)
	}
	m.Root = imgota.Part{Size: used, SHA256: imgota.Digest(h.Sum(nil))}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// squashfsSize returns the squashfs image's size from its superblock
// (bytes_used), rounded up to 4 KiB as the writer pads it.
func squashfsSize(r io.ReaderAt) (int64, error) {
	sb := make([]byte, 96)
	if _, err := r.ReadAt(sb, 0); err != nil {
		return 0, err
	}
	if string(sb[:4]) != "hsqs" {
		return 0, errors.New("no squashfs superblock")
	}
	used := int64(binary.LittleEndian.Uint64(sb[40:]))
	return (used + 4095) &^ 4095, nil
}

// Sign computes the active slot's manifest, signs it with priv and
// writes manifest.json and manifest.sig into the slot folder of the image
// file at p (which must already hold both files, as builds make them).
func Sign(p string, priv ed25519.PrivateKey, mtime time.Time) (*imgota.Manifest, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := Open(f)
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", p, err)
	}
	m, err := img.ComputeManifest()
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", p, err)
	}
	mb, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	sig := imgota.Sign(priv, mb)
	off, _ := extent(img.mbr, image.PartBoot)
	w := io.NewOffsetWriter(f, off)
	dir := imgota.SlotDir(img.Slot)
	for _, x := range []struct {
		name string
		data []byte
	}{{imgota.SignatureFile, sig.Marshal()}, {imgota.ManifestFile, mb}} {
		if err := img.boot.Replace(w, path.Join(dir, x.name), x.data, mtime); err != nil {
			return nil, fmt.Errorf("signing %s: writing %s/%s: %w", p, dir, x.name, err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	return m, f.Close()
}

// Verify checks the active slot: a manifest signed by one of keys (the
// key id is returned), and every hash of it against the image's bytes.
func (img *Image) Verify(keys []ed25519.PublicKey) (string, error) {
	if img.Manifest == nil {
		return "", fmt.Errorf("slot %s is not signed (no manifest.json)", img.Slot)
	}
	id, err := imgota.Verify(keys, img.ManifestBytes, *img.Signature)
	if err != nil {
		return "", err
	}
	return id, img.CheckSlot(img.Slot, img.Manifest)
}

// CheckSlot hashes slot's root partition and folder and reports what
// differs from m (whose config.txt and command line templates it does not
// check: a node rewrites them for the slot).
func (img *Image) CheckSlot(slot string, m *imgota.Manifest) error {
	var bad []string
	root, err := img.rootReader(slot)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(root, 0, m.Root.Size)); err != nil || imgota.Digest(h.Sum(nil)) != m.Root.SHA256 {
		bad = append(bad, "root")
	}
	dir := imgota.SlotDir(slot)
	for _, f := range m.Files {
		data, err := img.boot.ReadFile(path.Join(dir, f.Path))
		if err != nil || int64(len(data)) != f.Size || imgota.Digest(sha256.Sum256(data)) != f.SHA256 {
			bad = append(bad, f.Path)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("slot %s: the image's contents differ from its signed manifest: %s", slot, strings.Join(bad, ", "))
	}
	return nil
}

// WritePayload streams the active slot's payload to w: header, signed
// manifest and signature, the root filesystem (as a delta against the
// node's running root when base lists its chunk hashes), then each file,
// except those whose hash have reports the node has (sent as "have"). It
// returns the bytes of the parts' contents sent inline.
func (img *Image) WritePayload(w io.Writer, have func(imgota.Digest) bool, base []imgota.Digest) (int64, error) {
	if img.Manifest == nil {
		return 0, fmt.Errorf("the image is not signed: run piimage sign (or build with --key)")
	}
	pw, err := imgota.NewWriter(w, img.ManifestBytes, *img.Signature)
	if err != nil {
		return 0, err
	}
	root, err := img.rootReader(img.Slot)
	if err != nil {
		return 0, err
	}
	rr := io.NewSectionReader(root, 0, img.Manifest.Root.Size)
	var sent int64
	if base != nil {
		sent, err = pw.Delta(rr, base)
	} else {
		err = pw.Inline(rr)
		sent = img.Manifest.Root.Size
	}
	if err != nil {
		return sent, err
	}
	dir := imgota.SlotDir(img.Slot)
	for _, f := range img.Manifest.Files {
		if have != nil && have(f.SHA256) {
			if err := pw.Have(); err != nil {
				return sent, err
			}
			continue
		}
		fh, err := img.boot.Open(path.Join(dir, f.Path))
		if err != nil {
			return sent, err
		}
		err = pw.Inline(fh)
		fh.Close()
		if err != nil {
			return sent, err
		}
		sent += f.Size
	}
	return sent, pw.Close()
}

// PayloadSize returns the content bytes WritePayload sends with have and
// base.
func (img *Image) PayloadSize(have func(imgota.Digest) bool, base []imgota.Digest) (int64, error) {
	if img.Manifest == nil {
		return 0, nil
	}
	n := img.Manifest.Root.Size
	if base != nil {
		root, err := img.rootReader(img.Slot)
		if err != nil {
			return 0, err
		}
		mine, err := imgota.ChunkHashes(root, img.Manifest.Root.Size)
		if err != nil {
			return 0, err
		}
		known := map[imgota.Digest]bool{}
		for _, d := range base {
			known[d] = true
		}
		n = 0
		for i, d := range mine {
			if !known[d] {
				n += min(int64(imgota.ChunkSize), img.Manifest.Root.Size-int64(i)*imgota.ChunkSize)
			}
		}
	}
	for _, f := range img.Manifest.Files {
		if have == nil || !have(f.SHA256) {
			n += f.Size
		}
	}
	return n, nil
}
