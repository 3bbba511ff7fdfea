package boards

import (
	"os"
	"strings"
	"testing"
)

// TestModulesPinnedInGoMod checks that the versions the builder fetches are
// the ones go.mod requires (and go.sum hashes).
func TestModulesPinnedInGoMod(t *testing.T) {
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Module{KernelRPi, Firmware} {
		if !strings.Contains(string(gomod), m.Path+" "+m.Version) {
			t.Errorf("go.mod does not require %s %s", m.Path, m.Version)
		}
	}
	gosum, err := os.ReadFile("../go.sum")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Module{KernelRPi, Firmware} {
		if !strings.Contains(string(gosum), m.Path+" "+m.Version+" h1:") {
			t.Errorf("go.sum has no hash for %s", m)
		}
	}
}

// The file sets follow the Raspberry Pi documentation's boot folder page:
// Pi 4 boots start4.elf/fixup4.dat from its EEPROM bootloader and has no
// bootcode.bin; earlier models need bootcode.bin, start.elf and fixup.dat.
func TestBoardFileSets(t *testing.T) {
	tests := []struct {
		board    string
		firmware []string
		dtbs     []string
		section  string
		noFiles  []string
	}{
		{"pi3", []string{"bootcode.bin", "start.elf", "fixup.dat"}, []string{"bcm2710-rpi-3-b.dtb", "bcm2710-rpi-3-b-plus.dtb", "bcm2710-rpi-2-b.dtb"}, "[pi3]", []string{"start4.elf"}},
		{"pi4", []string{"start4.elf", "fixup4.dat"}, []string{"bcm2711-rpi-4-b.dtb"}, "[pi4]", []string{"bootcode.bin", "start.elf"}},
	}
	for _, tt := range tests {
		b, err := Get(tt.board)
		if err != nil {
			t.Fatal(err)
		}
		has := func(list []string, s string) bool {
			for _, x := range list {
				if x == s {
					return true
				}
			}
			return false
		}
		for _, f := range tt.firmware {
			if !has(b.FirmwareFiles, f) {
				t.Errorf("%s: firmware lacks %s", tt.board, f)
			}
		}
		for _, f := range tt.noFiles {
			if has(b.FirmwareFiles, f) {
				t.Errorf("%s: firmware must not contain %s", tt.board, f)
			}
		}
		for _, f := range tt.dtbs {
			if !has(b.DeviceTrees, f) {
				t.Errorf("%s: device trees lack %s", tt.board, f)
			}
		}
		cfg := b.ConfigTxt("slot-a")
		for _, want := range []string{"os_prefix=slot-a/\n", "kernel=vmlinuz\n", "arm_64bit=1\n", tt.section + "\n", "[all]\n"} {
			if !strings.Contains(cfg, want) {
				t.Errorf("%s config.txt lacks %q:\n%s", tt.board, want, cfg)
			}
		}
	}
}

func TestGetUnknownAndUnsupported(t *testing.T) {
	if _, err := Get("pi5"); err == nil || !strings.Contains(err.Error(), "pi2, pi3, pi4") {
		t.Errorf("Get(pi5) = %v, want an error listing the boards", err)
	}
	if _, err := Get("pi2"); err == nil || !strings.Contains(err.Error(), "not yet supported") {
		t.Errorf("Get(pi2) = %v, want not yet supported", err)
	}
}

func TestCheckKernelArch(t *testing.T) {
	arm64 := make([]byte, 64)
	copy(arm64[56:], "ARM\x64")
	arm := make([]byte, 64)
	copy(arm[0x24:], []byte{0x18, 0x28, 0x6f, 0x01})
	tests := []struct {
		head []byte
		arch string
		ok   bool
	}{
		{arm64, "arm64", true},
		{arm64, "arm", false},
		{arm, "arm", true},
		{arm, "arm64", false},
		{make([]byte, 64), "arm64", false},
		{nil, "arm64", false},
	}
	for i, tt := range tests {
		if err := CheckKernelArch(tt.head, tt.arch); (err == nil) != tt.ok {
			t.Errorf("%d: CheckKernelArch(..., %s) = %v, want ok=%v", i, tt.arch, err, tt.ok)
		}
	}
}
