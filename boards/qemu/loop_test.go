package qemu

import "testing"

func TestRebootKind(t *testing.T) {
	for _, tc := range []struct {
		console          string
		end              string
		restart, tryboot bool
	}{
		{"piimage: reboot\n[   12.1] reboot: Restarting system\n", "reboot", true, false},
		{"[   12.1] reboot: Restarting system with command '0 tryboot'\n", "reboot (tryboot)", true, true},
		{"Kernel panic - not syncing: Attempted to kill init!\nRebooting in 10 seconds..", "panic", true, false},
		{"[    9.0] reboot: Power down\n", "power off", false, false},
		{"qemu-system-aarch64: terminating on signal 15\n", "QEMU exited without a reboot or power-off message", false, false},
	} {
		end, restart, tryboot := rebootKind(tc.console)
		if end != tc.end || restart != tc.restart || tryboot != tc.tryboot {
			t.Errorf("rebootKind(%q) = %q %v %v, want %q %v %v", tc.console, end, restart, tryboot, tc.end, tc.restart, tc.tryboot)
		}
	}
}
