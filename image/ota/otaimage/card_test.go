package otaimage

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	imgota "github.com/piimage/piimage/image/ota"
)

func TestWriteCard(t *testing.T) {
	dir := t.TempDir()
	p := testImage(t, dir, "v1")
	if _, err := Sign(p, key(1), modTime); err != nil {
		t.Fatal(err)
	}
	img := open(t, p)
	card := filepath.Join(dir, "card")
	if err := img.WriteCard(card, []byte("PEM"), map[string][]byte{"token": []byte("secret")}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"config.txt", "tryboot.txt", "slot-a/vmlinuz", "slot-a/release.json", "slot-a/manifest.json", "slot-a/manifest.sig"} {
		want, err := readBoot(img, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(card, imgota.CardBoot, name))
		if err != nil || !bytes.Equal(got, want) || len(got) == 0 && name != "slot-a/manifest.json" && name != "slot-a/manifest.sig" {
			t.Errorf("%s: %d bytes, %v; want the image's %d bytes", name, len(got), err, len(want))
		}
	}
	if st, err := os.Stat(filepath.Join(card, imgota.CardBoot, "slot-b")); err != nil || !st.IsDir() {
		t.Errorf("slot-b folder: %v", err)
	}
	for _, slot := range []string{"a", "b"} {
		r, err := img.rootReader(slot)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(r)
		got, err := os.ReadFile(filepath.Join(card, imgota.CardRoot(slot)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("root %s: %d bytes (%v), want the partition's %d", slot, len(got), err, len(want))
		}
	}
	if b, err := os.ReadFile(filepath.Join(card, imgota.CardKeys)); err != nil || string(b) != "PEM" {
		t.Errorf("keys: %q %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(card, imgota.CardAdmin, "token")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("admin credential: %v %v", st, err)
	}
	if err := img.WriteCard(card, nil, nil); err == nil {
		t.Error("WriteCard over an existing card folder succeeded")
	}
}

func readBoot(img *Image, name string) ([]byte, error) {
	f, err := img.Boot().Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
