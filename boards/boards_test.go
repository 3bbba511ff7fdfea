package boards

import (
	"os"
	"reflect"
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

// The file sets follow the Raspberry Pi documentation: the boot folder
// page (bootcode.bin is the second stage for models before the Pi 4, whose
// EEPROM replaces it; start.elf/fixup.dat are the Pi 1-3 firmware pair,
// start4.elf/fixup4.dat the Pi 4 one), the config.txt boot options
// (arm_64bit=1 for a 64-bit kernel, which runs only on the Pi 4, Pi 3 and
// Pi 2 model B v1.2; kernel= names the image; "initramfs FILE followkernel"
// without "="; os_prefix applies to kernels, initramfs, cmdline.txt, .dtbs
// and overlays) and the conditional filters [pi2], [pi3], [pi4], [all].
func TestBoardFileSets(t *testing.T) {
	tests := []struct {
		board     string
		firmware  []string
		dtbs      []string
		initramfs string
		config    []string // lines config.txt has, in this order
		noConfig  []string // lines it must not have
	}{
		{
			board:    "pi2",
			firmware: []string{"bootcode.bin", "start.elf", "fixup.dat"},
			dtbs:     []string{"bcm2836-rpi-2-b.dtb"},
			// The firmware's default device tree for a Pi 2 v1.1 is
			// the downstream bcm2709-rpi-2-b.dtb: name the upstream
			// one. No arm_64bit: the BCM2836 runs only 32-bit.
			initramfs: "initramfs.cpio",
			config: []string{"os_prefix=slot-a/", "kernel=vmlinuz", "enable_uart=1", "[pi2]",
				"device_tree=bcm2836-rpi-2-b.dtb", "initramfs initramfs.cpio followkernel", "[all]"},
			noConfig: []string{"arm_64bit=1"},
		},
		{
			board:    "pi3",
			firmware: []string{"bootcode.bin", "start.elf", "fixup.dat"},
			// 3B, 3B+, CM3 and the Pi 2 v1.2 (BCM2837) under the
			// downstream names the firmware loads by default.
			dtbs:     []string{"bcm2710-rpi-2-b.dtb", "bcm2710-rpi-3-b.dtb", "bcm2710-rpi-3-b-plus.dtb", "bcm2710-rpi-cm3.dtb"},
			config:   []string{"os_prefix=slot-a/", "kernel=vmlinuz", "arm_64bit=1", "enable_uart=1", "[pi3]", "[all]"},
			noConfig: []string{"device_tree=bcm2836-rpi-2-b.dtb"},
		},
		{
			board:    "pi4",
			firmware: []string{"start4.elf", "fixup4.dat"},
			dtbs:     []string{"bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4.dtb", "bcm2711-rpi-cm4s.dtb"},
			config:   []string{"os_prefix=slot-a/", "kernel=vmlinuz", "arm_64bit=1", "enable_uart=1", "[pi4]", "max_framebuffers=1", "[all]"},
		},
	}
	for _, tt := range tests {
		b, err := Get(tt.board)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(b.FirmwareFiles, tt.firmware) {
			t.Errorf("%s: firmware %q, want %q", tt.board, b.FirmwareFiles, tt.firmware)
		}
		if !reflect.DeepEqual(b.DeviceTrees, tt.dtbs) {
			t.Errorf("%s: device trees %q, want %q", tt.board, b.DeviceTrees, tt.dtbs)
		}
		if b.Initramfs != tt.initramfs {
			t.Errorf("%s: initramfs %q, want %q", tt.board, b.Initramfs, tt.initramfs)
		}
		lines := strings.Split(b.ConfigTxt("slot-a"), "\n")
		i := 0
		for _, l := range lines {
			if i < len(tt.config) && l == tt.config[i] {
				i++
			}
			for _, no := range tt.noConfig {
				if l == no {
					t.Errorf("%s config.txt has %q", tt.board, l)
				}
			}
		}
		if i < len(tt.config) {
			t.Errorf("%s config.txt lacks %q (or has it out of order):\n%s", tt.board, tt.config[i], b.ConfigTxt("slot-a"))
		}
	}
}

// TestBoardsAreConsistent checks what every board must have: a 64-bit
// kernel only with an arm64 init and arm_64bit; a kernel source; firmware.
func TestBoardsAreConsistent(t *testing.T) {
	for _, name := range Names() {
		b, err := Get(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if b.KernelArch != b.GOARCH {
			t.Errorf("%s: kernel %s but init %s", name, b.KernelArch, b.GOARCH)
		}
		if (b.Debian == nil) == (b.Kernel == Module{}) {
			t.Errorf("%s: needs exactly one of a kernel module and a Debian kernel", name)
		}
		if b.Debian != nil && b.Initramfs == "" {
			t.Errorf("%s: Debian's kernel has its drivers as modules: it needs an initramfs", name)
		}
		if b.Firmware == (Module{}) || len(b.FirmwareFiles) == 0 || b.KernelFile == "" || len(b.DeviceTrees) == 0 || b.SerialConsole == "" {
			t.Errorf("%s: incomplete board %+v", name, b)
		}
		if got := b.KernelSource(); got == "" || got == "@" {
			t.Errorf("%s: KernelSource() = %q", name, got)
		}
	}
}

func TestGetUnknown(t *testing.T) {
	if _, err := Get("pi5"); err == nil || !strings.Contains(err.Error(), "pi2, pi3, pi4") {
		t.Errorf("Get(pi5) = %v, want an error listing the boards", err)
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
