package boards

import (
	"fmt"
	"strings"
)

// ConfigTxt returns the firmware's config.txt for booting the slot folder
// slotDir ("slot-a"). os_prefix makes the firmware load the kernel, device
// trees, overlays and cmdline.txt from that folder.
func (b Board) ConfigTxt(slotDir string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "# Written by piimage for board %s. An update switches os_prefix between\n", b.Name)
	s.WriteString("# slot-a/ and slot-b/; the node's settings live in node.yaml, not here.\n")
	fmt.Fprintf(&s, "os_prefix=%s/\n", slotDir)
	fmt.Fprintf(&s, "kernel=%s\n", b.KernelFile)
	if b.KernelArch == "arm64" {
		s.WriteString("arm_64bit=1\n")
	}
	s.WriteString("enable_uart=1\n")
	s.WriteString("disable_splash=1\n")
	s.WriteString("\n" + b.ConfigSection + "\n")
	for _, l := range b.ConfigLines {
		s.WriteString(l + "\n")
	}
	if b.Initramfs != "" {
		// No "=" here: initramfs takes a file and where to load it.
		fmt.Fprintf(&s, "initramfs %s followkernel\n", b.Initramfs)
	}
	if b.Name == "pi4" {
		// The Pi 4 firmware otherwise reserves memory for a 4K frame buffer.
		s.WriteString("max_framebuffers=1\n")
	}
	s.WriteString("\n[all]\n")
	return s.String()
}
