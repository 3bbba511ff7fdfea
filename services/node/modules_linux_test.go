package node

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseLoadList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"# comment\nsdhci.ko\n\n  dwc2.ko  \n", []string{"sdhci.ko", "dwc2.ko"}, false},
		{"", nil, false},
		{"../etc/x.ko\n", nil, true},
		{"a/b.ko\n", nil, true},
		{"..\n", nil, true},
	}
	for _, tt := range tests {
		got, err := parseLoadList(strings.NewReader(tt.in))
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseLoadList(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// TestLoadModules drives the loader with a fake finit_module: modules
// load in list order, an already loaded one counts, and one failure does
// not stop the rest (QEMU refuses the watchdog driver, say).
func TestLoadModules(t *testing.T) {
	var calls []string
	load := func(p string) error {
		calls = append(calls, p)
		switch {
		case strings.HasSuffix(p, "usbcore.ko"):
			return &os.PathError{Op: "finit_module", Path: p, Err: unix.EEXIST}
		case strings.HasSuffix(p, "bcm2835_wdt.ko"):
			return &os.PathError{Op: "finit_module", Path: p, Err: unix.EPERM}
		}
		return nil
	}
	n, errs := loadModules("/lib/modules", []string{"usbcore.ko", "dwc2.ko", "bcm2835_wdt.ko", "ext4.ko"}, load)
	if want := []string{"/lib/modules/usbcore.ko", "/lib/modules/dwc2.ko", "/lib/modules/bcm2835_wdt.ko", "/lib/modules/ext4.ko"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("load order %q, want %q", calls, want)
	}
	if n != 3 || len(errs) != 1 || !errors.Is(errs[0], unix.EPERM) || !strings.Contains(errs[0].Error(), "bcm2835_wdt.ko") {
		t.Errorf("loadModules = %d, %v; want 3 loaded and the watchdog's EPERM", n, errs)
	}
}

func TestRootFSType(t *testing.T) {
	for cmdline, want := range map[string]string{
		"root=PARTUUID=1a2b3c4d-02 rootfstype=squashfs ro": "squashfs",
		"root=/dev/sda1 rootfstype=ext4 rootfstype=erofs":  "erofs",
		"root=PARTUUID=1a2b3c4d-02 rootfstype=":            "squashfs",
		"":                                                 "squashfs",
	} {
		if got := rootFSType(cmdline); got != want {
			t.Errorf("rootFSType(%q) = %q, want %q", cmdline, got, want)
		}
	}
}

// TestNotInInitramfs: the test machine's root is no piimage initramfs, so
// both initramfs steps do nothing.
func TestNotInInitramfs(t *testing.T) {
	if inInitramfs() {
		t.Skip("running from a piimage initramfs")
	}
	b := &boot{}
	if err := b.loadModulesStep(); err != nil {
		t.Errorf("loadModulesStep outside an initramfs: %v", err)
	}
	if err := b.switchRootStep(); err != nil {
		t.Errorf("switchRootStep outside an initramfs: %v", err)
	}
}

// TestFinitModuleErrorNamesTheFile: a file that is no module is refused
// by the kernel (or by the missing privilege) with the path in the error.
func TestFinitModuleErrorNamesTheFile(t *testing.T) {
	p := t.TempDir() + "/not-a-module.ko"
	if err := os.WriteFile(p, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := finitModule(p)
	if err == nil {
		t.Fatal("finit_module accepted a text file")
	}
	if !strings.Contains(err.Error(), "not-a-module.ko") || !strings.Contains(err.Error(), "finit_module") {
		t.Errorf("error %q does not name the call and the file", err)
	}
}
