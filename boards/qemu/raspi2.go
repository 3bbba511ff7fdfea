package qemu

import (
	"fmt"
	"sort"
	"strings"
)

// Machine is an emulated Raspberry Pi: the QEMU machine and what the GPU
// firmware would do on that model.
type Machine struct {
	// Name is QEMU's machine ("raspi3b", "raspi2b").
	Name string
	// Binary is the QEMU program that has it.
	Binary string
	// Section is the config.txt filter that applies to the model, besides
	// [all].
	Section string
	// DefaultDTB is the device tree the firmware loads when config.txt
	// names none (device_tree=).
	DefaultDTB string
	// Console is the serial console the guest kernel gets, appended to
	// the command line: where QEMU's first UART is with that device tree.
	Console string
	// Accel are QEMU's accelerator options.
	Accel []string
	// DwC2USB switches the device tree's USB node to the dwc2 driver,
	// which the downstream bcm2710 trees need under QEMU.
	DwC2USB bool
}

// BinaryARM is the QEMU executable for the 32-bit Pi 2 machine.
const BinaryARM = "qemu-system-arm"

// machines are the Raspberry Pi models QEMU 7.2 emulates well enough to
// boot a piimage image. It has no Pi 4.
var machines = map[string]Machine{
	"raspi3b": {
		Name:       "raspi3b",
		Binary:     Binary,
		Section:    "[pi3]",
		DefaultDTB: dtbName,
		// The downstream device tree puts the console on ttyAMA1 under
		// QEMU.
		Console: "ttyAMA1",
		// One TCG thread halves the boot time of the 4 emulated cores.
		Accel:   []string{"-accel", "tcg,thread=single"},
		DwC2USB: true,
	},
	"raspi2b": {
		Name:    "raspi2b",
		Binary:  BinaryARM,
		Section: "[pi2]",
		// What the firmware loads for a Pi 2 v1.1 by default; piimage's
		// pi2 config.txt names the upstream tree instead.
		DefaultDTB: "bcm2709-rpi-2-b.dtb",
		// The upstream bcm2836 tree has the PL011 as ttyAMA0.
		Console: "ttyAMA0",
		// QEMU's default multi-threaded TCG: raspi2b hangs with
		// thread=single.
	},
}

// boardMachines maps piimage boards to the machine that emulates them.
var boardMachines = map[string]string{"pi2": "raspi2b", "pi3": "raspi3b"}

// MachineNamed returns the machine called name; "" is raspi3b.
func MachineNamed(name string) (Machine, error) {
	if name == "" {
		name = "raspi3b"
	}
	m, ok := machines[name]
	if !ok {
		var names []string
		for n := range machines {
			names = append(names, n)
		}
		sort.Strings(names)
		return Machine{}, fmt.Errorf("QEMU machine %q is not one piimage boots: want one of %s", name, strings.Join(names, ", "))
	}
	return m, nil
}

// MachineForBoard returns the QEMU machine that emulates board ("pi2",
// "pi3"); QEMU has no Pi 4.
func MachineForBoard(board string) (Machine, error) {
	name, ok := boardMachines[board]
	if !ok {
		return Machine{}, fmt.Errorf("board %s cannot be emulated: QEMU emulates the Pi 2 (raspi2b) and Pi 3 (raspi3b) only", board)
	}
	return MachineNamed(name)
}

// bootConfig is what the firmware takes from config.txt for one model.
type bootConfig struct {
	prefix     string
	kernel     string
	deviceTree string
	initramfs  string
}

// parseConfigTxt reads config.txt (or tryboot.txt) the way the firmware
// does for the model whose filter is section: settings under [all] and
// under section count, others not; the last value of a setting wins.
// "initramfs FILE ADDRESS" has no "=".
func parseConfigTxt(text, section string) bootConfig {
	c := bootConfig{kernel: "kernel8.img"}
	if section == "[pi2]" {
		c.kernel = "kernel7.img"
	}
	active := true
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = strings.TrimSpace(l[:i])
		}
		if strings.HasPrefix(l, "[") {
			active = l == "[all]" || l == section
			continue
		}
		if !active || l == "" {
			continue
		}
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "initramfs" {
			c.initramfs = f[1]
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "os_prefix":
			c.prefix = strings.TrimSpace(v)
		case "kernel":
			c.kernel = strings.TrimSpace(v)
		case "device_tree":
			c.deviceTree = strings.TrimSpace(v)
		}
	}
	return c
}
