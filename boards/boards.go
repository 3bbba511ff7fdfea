// Package boards describes the Raspberry Pi models piimage builds for: which
// kernel, firmware and device trees each needs, the CPU architecture of its
// init, and its config.txt. It also fetches the pinned kernel and firmware:
// Go modules through the Go module proxy, and for the 32-bit Pi 2 a Debian
// kernel package from the Debian mirror apt uses (pi2.go, debian*.go).
package boards

import (
	"fmt"
	"sort"
	"strings"
)

// Module is a Go module that carries boot files, pinned by version. go.sum
// holds its hash, so `go mod download` verifies every byte.
type Module struct {
	Path    string
	Version string
}

func (m Module) String() string { return m.Path + "@" + m.Version }

// The pinned modules. Keep them equal to go.mod: a test checks.
var (
	// KernelRPi is gokrazy's Raspberry Pi kernel: an arm64 Linux with
	// squashfs (zlib), vfat, ext4, nftables, bridge, veth and USB network
	// drivers built in, plus the Pi device trees and overlays.
	KernelRPi = Module{"github.com/gokrazy/kernel.rpi", "v0.0.0-20251127164438-9778ec0261de"}
	// Firmware is the Raspberry Pi GPU firmware.
	Firmware = Module{"github.com/gokrazy/firmware", "v0.0.0-20260522070551-527ce0ed43cf"}
)

// Board is one supported Raspberry Pi model family.
type Board struct {
	Name        string
	Description string
	// GOARCH and GOARM of the init.
	GOARCH, GOARM string
	// KernelArch is the architecture the kernel image must be built for
	// ("arm64" or "arm"); the builder checks the image's magic bytes.
	KernelArch string
	// Kernel is the Go module carrying the kernel, unless Debian is set:
	// then the kernel comes from that Debian package.
	Kernel Module
	Debian *DebianKernel
	// KernelFile is the kernel's file name in the module and on the FAT.
	KernelFile string
	// DeviceTrees are copied from the kernel module into each slot folder.
	DeviceTrees []string
	// OverlaysDir, when set, is the kernel module's folder of device tree
	// overlays, copied to <slot>/overlays/.
	OverlaysDir string
	Firmware    Module
	// FirmwareFiles are copied from the firmware module to the FAT root.
	FirmwareFiles []string
	// ConfigSection is the config.txt filter this board's settings sit
	// under ("[pi3]", "[pi4]").
	ConfigSection string
	// ConfigLines are config.txt settings under ConfigSection.
	ConfigLines []string
	// Initramfs, when set, is the file name of the initramfs in the slot
	// folder (config.txt loads it with "initramfs NAME followkernel"); its
	// /init is the init, which loads Kernel.Modules and switches to the
	// root partition.
	Initramfs string
	// SerialConsole is the kernel's name of the UART on GPIO 14/15 with
	// enable_uart=1: ttyS0 (the mini UART) on the Pi 3 and 4, ttyAMA0
	// (the PL011) on the Pi 2.
	SerialConsole string
	// Supported is false for boards whose image does not boot yet; Err
	// says why.
	Supported bool
	Err       string
}

var all = map[string]Board{
	"pi3": {
		Name:        "pi3",
		Description: "Raspberry Pi 3 model B/B+ (and Pi 2 model B v1.2), 64-bit",
		GOARCH:      "arm64",
		KernelArch:  "arm64",
		Kernel:      KernelRPi,
		KernelFile:  "vmlinuz",
		DeviceTrees: []string{
			"bcm2710-rpi-2-b.dtb",
			"bcm2710-rpi-3-b.dtb",
			"bcm2710-rpi-3-b-plus.dtb",
			"bcm2710-rpi-cm3.dtb",
		},
		OverlaysDir: "overlays",
		Firmware:    Firmware,
		// Pi 1–3 boot through bootcode.bin, then start.elf/fixup.dat.
		FirmwareFiles: []string{"bootcode.bin", "start.elf", "fixup.dat"},
		ConfigSection: "[pi3]",
		SerialConsole: "ttyS0",
		Supported:     true,
	},
	"pi4": {
		Name:        "pi4",
		Description: "Raspberry Pi 4 model B, Pi 400 and CM4, 64-bit",
		GOARCH:      "arm64",
		KernelArch:  "arm64",
		Kernel:      KernelRPi,
		KernelFile:  "vmlinuz",
		DeviceTrees: []string{
			"bcm2711-rpi-4-b.dtb",
			"bcm2711-rpi-400.dtb",
			"bcm2711-rpi-cm4.dtb",
			"bcm2711-rpi-cm4s.dtb",
		},
		OverlaysDir: "overlays",
		Firmware:    Firmware,
		// The Pi 4 boots from its EEPROM: no bootcode.bin; it loads
		// start4.elf and fixup4.dat.
		FirmwareFiles: []string{"start4.elf", "fixup4.dat"},
		ConfigSection: "[pi4]",
		SerialConsole: "ttyS0",
		Supported:     true,
	},
	"pi2": {
		Name:        "pi2",
		Description: "Raspberry Pi 2 model B v1.1 (BCM2836), 32-bit; a v1.2 boots the pi3 image",
		GOARCH:      "arm",
		GOARM:       "7",
		KernelArch:  "arm",
		Debian:      &DebianArmmp,
		KernelFile:  "vmlinuz",
		// Debian's kernel is upstream Linux: its device tree has the
		// upstream name, which the firmware loads only when told to.
		DeviceTrees:   []string{"bcm2836-rpi-2-b.dtb"},
		Firmware:      Firmware,
		FirmwareFiles: []string{"bootcode.bin", "start.elf", "fixup.dat"},
		ConfigSection: "[pi2]",
		ConfigLines:   []string{"device_tree=bcm2836-rpi-2-b.dtb"},
		Initramfs:     "initramfs.cpio",
		SerialConsole: "ttyAMA0",
		Supported:     true,
	},
}

// Get returns the board called name.
func Get(name string) (Board, error) {
	b, ok := all[name]
	if !ok {
		return Board{}, fmt.Errorf("unknown board %q: want one of %s", name, strings.Join(Names(), ", "))
	}
	if !b.Supported {
		return b, fmt.Errorf("%s", b.Err)
	}
	return b, nil
}

// Names lists every board name, sorted.
func Names() []string {
	var n []string
	for k := range all {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
