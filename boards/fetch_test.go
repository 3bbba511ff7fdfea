package boards

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFetchWithoutNetworkNamesTheModule(t *testing.T) {
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-modcacherw")
	_, err := Fetch(context.Background(), "..", Firmware)
	if err == nil {
		t.Fatal("Fetch succeeded with an empty cache and no proxy")
	}
	for _, want := range []string{Firmware.Path, Firmware.Version, "module proxy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestFetchFromCache(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads the firmware module when not cached")
	}
	dir, err := Fetch(context.Background(), "..", Firmware)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bootcode.bin", "start.elf", "fixup.dat", "start4.elf", "fixup4.dat"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("firmware module lacks %s: %v", f, err)
		}
	}
}
