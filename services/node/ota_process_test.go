package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	imgota "github.com/piimage/piimage/image/ota"
)

// writeCardBoot writes a card folder's boot files: config.txt and
// tryboot.txt naming slots, and each slot's release.json and cmdline.txt.
func writeCardBoot(t *testing.T, cfg, tryboot string, slots map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	boot := filepath.Join(dir, imgota.CardBoot)
	writeFile(t, filepath.Join(boot, "config.txt"), cfg)
	writeFile(t, filepath.Join(boot, "tryboot.txt"), tryboot)
	for slot, version := range slots {
		sd := filepath.Join(boot, imgota.SlotDir(slot))
		writeFile(t, filepath.Join(sd, "release.json"), `{"version":"`+version+`","board":"pi3"}`)
		part := map[string]string{"a": "02", "b": "03"}[slot]
		writeFile(t, filepath.Join(sd, "cmdline.txt"), "console=ttyS0 root=PARTUUID=0a0b0c0d-"+part+" ro\n")
	}
	return dir
}

func TestOpenCard(t *testing.T) {
	slots := map[string]string{"a": "v1", "b": "v2"}
	t.Run("config.txt names the slot", func(t *testing.T) {
		dir := writeCardBoot(t, "os_prefix=slot-a/\n", "os_prefix=slot-b/\n", slots)
		c, err := openCard(dir)
		if err != nil || c.slot != "a" || c.release.Version != "v1" {
			t.Fatalf("openCard = %+v, %v; want slot a, v1", c, err)
		}
		if id, err := c.diskID(); err != nil || id != 0x0a0b0c0d {
			t.Errorf("diskID = %#x, %v", id, err)
		}
	})
	t.Run("a tryboot restart boots tryboot.txt once", func(t *testing.T) {
		dir := writeCardBoot(t, "os_prefix=slot-a/\n", "os_prefix=slot-b/\n", slots)
		writeFile(t, filepath.Join(dir, imgota.CardTryboot), "")
		c, err := openCard(dir)
		if err != nil || c.slot != "b" || c.release.Version != "v2" {
			t.Fatalf("openCard after tryboot = %+v, %v; want slot b, v2", c, err)
		}
		if _, err := os.Stat(filepath.Join(dir, imgota.CardTryboot)); !os.IsNotExist(err) {
			t.Errorf("the tryboot flag is left: %v", err)
		}
		if c, err = openCard(dir); err != nil || c.slot != "a" {
			t.Errorf("the next start = %+v, %v; want slot a again", c, err)
		}
	})
	for _, tc := range []struct {
		name, cfg string
		slots     map[string]string
		want      string
	}{
		{"no slot named", "kernel=vmlinuz\n", slots, "names no slot"},
		{"an empty slot", "os_prefix=slot-b/\n", map[string]string{"a": "v1"}, "no release.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeCardBoot(t, tc.cfg, tc.cfg, tc.slots)
			if _, err := openCard(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("openCard = %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := openCard(t.TempDir()); err == nil {
		t.Error("openCard of an empty folder succeeded")
	}
}
