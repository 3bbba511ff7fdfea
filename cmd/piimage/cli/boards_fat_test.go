package cli

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/piimage/piimage/image"
)

// TestBoardBootPartitions builds a node for each board and lists its boot
// partition with mtools (an independent FAT reader): the files must be
// exactly the board's firmware, config.txt, tryboot.txt and node.yaml at
// the root, and the kernel, device trees, initramfs (Pi 2), overlays (Pi
// 3/4), cmdline.txt and release.json in slot-a/ (beside whatever else the
// update machinery keeps there). The sets follow the
// Raspberry Pi documentation's boot folder page (Pi 4: start4.elf and
// fixup4.dat, no bootcode.bin; earlier models: bootcode.bin, start.elf,
// fixup.dat) and config.txt page (arm_64bit=1 only for 64-bit kernels).
func TestBoardBootPartitions(t *testing.T) {
	needTool(t, "mdir")
	common := []string{"config.txt", "node.yaml", "slot-a/", "slot-b/", "tryboot.txt"}
	tests := []struct {
		board    string
		root     []string
		slot     []string
		overlays bool
		config   []string
		noConfig []string
		cmdline  string
	}{
		{
			board: "pi2",
			root:  []string{"bootcode.bin", "start.elf", "fixup.dat"},
			slot:  []string{"vmlinuz", "initramfs.cpio", "bcm2836-rpi-2-b.dtb", "cmdline.txt", "release.json"},
			config: []string{"os_prefix=slot-a/", "kernel=vmlinuz", "[pi2]", "device_tree=bcm2836-rpi-2-b.dtb",
				"initramfs initramfs.cpio followkernel", "[all]"},
			noConfig: []string{"arm_64bit=1"},
			cmdline:  "console=ttyAMA0,115200 console=tty1 root=PARTUUID=",
		},
		{
			board:    "pi3",
			root:     []string{"bootcode.bin", "start.elf", "fixup.dat"},
			slot:     []string{"vmlinuz", "bcm2710-rpi-2-b.dtb", "bcm2710-rpi-3-b.dtb", "bcm2710-rpi-3-b-plus.dtb", "bcm2710-rpi-cm3.dtb", "cmdline.txt", "release.json", "overlays/"},
			overlays: true,
			config:   []string{"os_prefix=slot-a/", "kernel=vmlinuz", "arm_64bit=1", "[pi3]", "[all]"},
			noConfig: []string{"initramfs initramfs.cpio followkernel"},
			cmdline:  "console=ttyS0,115200 console=tty1 root=PARTUUID=",
		},
		{
			board:    "pi4",
			root:     []string{"start4.elf", "fixup4.dat"},
			slot:     []string{"vmlinuz", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4.dtb", "bcm2711-rpi-cm4s.dtb", "cmdline.txt", "release.json", "overlays/"},
			overlays: true,
			config:   []string{"os_prefix=slot-a/", "kernel=vmlinuz", "arm_64bit=1", "[pi4]", "max_framebuffers=1", "[all]"},
			cmdline:  "console=ttyS0,115200 console=tty1 root=PARTUUID=",
		},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.board, func(t *testing.T) {
			if tt.board == "pi2" && testing.Short() {
				t.Skip("the pi2 kernel is a Debian package: fetched and unpacked once (about 43 MB), then cached")
			}
			img := filepath.Join(dir, tt.board+".img")
			buildRole(t, "web", img, "--board", tt.board)
			at := fmt.Sprintf("%s@@%d", img, image.Align)
			var root, slot []string
			overlays := 0
			for _, l := range strings.Split(run(t, "mdir", "-/", "-b", "-i", at, "::/"), "\n") {
				p, ok := strings.CutPrefix(strings.TrimSpace(l), "::/")
				switch {
				case !ok:
				case p == "slot-a/" || p == "slot-b/":
					root = append(root, p)
				case strings.HasPrefix(p, "slot-a/overlays/") && p != "slot-a/overlays/":
					overlays++
				case strings.HasPrefix(p, "slot-a/"):
					slot = append(slot, strings.TrimPrefix(p, "slot-a/"))
				case strings.HasPrefix(p, "slot-b/"):
					t.Errorf("slot-b/ is not empty: %s", p)
				default:
					root = append(root, p)
				}
			}
			// Exactly these firmware and boot files; other files (what
			// updates keep beside the slot, say) are not the firmware's
			// business.
			want := append(append([]string{}, tt.root...), common...)
			got := bootFiles(root, append([]string{".bin", ".elf", ".dat", ".img"}, common...))
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("boot partition root:\n got %q (of %q)\nwant %q", got, root, want)
			}
			wantSlot := append([]string{}, tt.slot...)
			gotSlot := bootFiles(slot, []string{".dtb", ".cpio", ".img", "vmlinuz", "cmdline.txt", "release.json", "overlays/"})
			sort.Strings(wantSlot)
			if !reflect.DeepEqual(gotSlot, wantSlot) {
				t.Errorf("slot-a/:\n got %q (of %q)\nwant %q", gotSlot, slot, wantSlot)
			}
			if tt.overlays != (overlays > 0) {
				t.Errorf("slot-a/overlays/ has %d files, want overlays=%v", overlays, tt.overlays)
			}
			cfg := strings.Split(strings.ReplaceAll(run(t, "mtype", "-i", at, "::/config.txt"), "\r", ""), "\n")
			i := 0
			for _, l := range cfg {
				if i < len(tt.config) && l == tt.config[i] {
					i++
				}
				for _, no := range tt.noConfig {
					if l == no {
						t.Errorf("config.txt has %q", l)
					}
				}
			}
			if i < len(tt.config) {
				t.Errorf("config.txt lacks %q (or has it out of order):\n%s", tt.config[i], strings.Join(cfg, "\n"))
			}
			if c := run(t, "mtype", "-i", at, "::/slot-a/cmdline.txt"); !strings.HasPrefix(c, tt.cmdline) {
				t.Errorf("cmdline.txt = %q, want it to start with %q", c, tt.cmdline)
			}
		})
	}
}

// bootFiles returns the names that end with one of suffixes, sorted.
func bootFiles(names, suffixes []string) []string {
	var out []string
	for _, n := range names {
		for _, s := range suffixes {
			if strings.HasSuffix(n, s) {
				out = append(out, n)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestPi2BuildIsReproducible: the Debian kernel, its modules and the
// initramfs archive give the same bytes twice.
func TestPi2BuildIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("the pi2 kernel is a Debian package: fetched and unpacked once, then cached")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	buildRole(t, "web", a, "--board", "pi2", "--time", "2026-05-01T00:00:00Z", "--version", "test")
	buildRole(t, "web", b, "--board", "pi2", "--time", "2026-05-01T00:00:00Z", "--version", "test")
	if sha(t, a) != sha(t, b) {
		t.Fatal("two pi2 builds of the same inputs differ")
	}
}
