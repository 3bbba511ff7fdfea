package otaimage

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	imgota "github.com/piimage/piimage/image/ota"
)

// WriteCard writes the image as a card folder (imgota.CardBoot and the
// rest) at dir, which must not exist: the boot partition's files, both
// root partitions as sparse files of the partitions' size, the public keys
// pubPEM and the admin credential files admin (name to contents). A node
// in process mode started with --card dir boots it as a Pi boots the
// image.
func (img *Image) WriteCard(dir string, pubPEM []byte, admin map[string][]byte) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("card folder %s exists already", dir)
	}
	boot := filepath.Join(dir, imgota.CardBoot)
	if err := os.MkdirAll(boot, 0o755); err != nil {
		return err
	}
	err := fs.WalkDir(img.boot, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		dst := filepath.Join(boot, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(img.boot, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copying the boot partition: %w", err)
	}
	for _, slot := range []string{"a", "b"} {
		r, err := img.rootReader(slot)
		if err != nil {
			return err
		}
		if err := writeSparse(filepath.Join(dir, imgota.CardRoot(slot)), r); err != nil {
			return fmt.Errorf("copying root partition %s: %w", slot, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, imgota.CardKeys), pubPEM, 0o644); err != nil {
		return err
	}
	ad := filepath.Join(dir, imgota.CardAdmin)
	if err := os.MkdirAll(ad, 0o700); err != nil {
		return err
	}
	for name, b := range admin {
		if err := os.WriteFile(filepath.Join(ad, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeSparse copies r to a new file, leaving holes where r is zero.
func writeSparse(name string, r *io.SectionReader) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	var off int64
	for off < r.Size() {
		n, err := r.ReadAt(buf, off)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				f.Close()
				return err
			}
		}
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Truncate(r.Size()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
