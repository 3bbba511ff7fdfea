package qemu

import (
	"strings"
	"testing"

	"github.com/piimage/piimage/boards"
)

func TestParseConfigTxt(t *testing.T) {
	text := `# comment
os_prefix=slot-a/
kernel=vmlinuz
arm_64bit=1

[pi4]
kernel=kernel-pi4
device_tree=pi4.dtb
initramfs pi4.cpio followkernel

[pi2]
device_tree=bcm2836-rpi-2-b.dtb # upstream name
initramfs initramfs.cpio followkernel

[pi3]
kernel=vmlinuz-pi3

[all]
os_prefix=slot-b/
`
	tests := []struct {
		section string
		want    bootConfig
	}{
		{"[pi2]", bootConfig{prefix: "slot-b/", kernel: "vmlinuz", deviceTree: "bcm2836-rpi-2-b.dtb", initramfs: "initramfs.cpio"}},
		{"[pi3]", bootConfig{prefix: "slot-b/", kernel: "vmlinuz-pi3"}},
	}
	for _, tt := range tests {
		if got := parseConfigTxt(text, tt.section); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.section, got, tt.want)
		}
	}
	if got := parseConfigTxt("", "[pi2]"); got.kernel != "kernel7.img" {
		t.Errorf("default 32-bit kernel %q, want kernel7.img", got.kernel)
	}
}

// TestBoardsConfigOnTheirMachines reads each emulated board's own
// config.txt the way its machine's firmware would.
func TestBoardsConfigOnTheirMachines(t *testing.T) {
	tests := []struct {
		board string
		want  bootConfig
	}{
		{"pi2", bootConfig{prefix: "slot-a/", kernel: "vmlinuz", deviceTree: "bcm2836-rpi-2-b.dtb", initramfs: "initramfs.cpio"}},
		{"pi3", bootConfig{prefix: "slot-a/", kernel: "vmlinuz"}},
	}
	for _, tt := range tests {
		b, err := boards.Get(tt.board)
		if err != nil {
			t.Fatal(err)
		}
		m, err := MachineForBoard(tt.board)
		if err != nil {
			t.Fatal(err)
		}
		if got := parseConfigTxt(b.ConfigTxt("slot-a"), m.Section); got != tt.want {
			t.Errorf("%s on %s: %+v, want %+v", tt.board, m.Name, got, tt.want)
		}
	}
	if _, err := MachineForBoard("pi4"); err == nil || !strings.Contains(err.Error(), "cannot be emulated") {
		t.Errorf("MachineForBoard(pi4) = %v", err)
	}
	if m, err := MachineNamed(""); err != nil || m.Name != "raspi3b" || m.Binary != Binary {
		t.Errorf("default machine %+v, %v", m, err)
	}
	if _, err := MachineNamed("raspi4b"); err == nil {
		t.Error("raspi4b accepted")
	}
}
