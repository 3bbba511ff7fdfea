// Package qemu boots a piimage SD-card image under QEMU's Raspberry Pi 3
// (raspi3b) or Pi 2 (raspi2b) emulation. QEMU cannot run the Pi's GPU
// firmware, so this package plays the firmware's part: it reads config.txt
// (and tryboot.txt on a trial boot) for the model's section, honours
// os_prefix, kernel=, device_tree= and initramfs, and passes the slot's
// kernel, device tree, initramfs and cmdline.txt to QEMU directly. The guest's network is QEMU's user network
// with restrict=on: it cannot reach any real network; only the port forwards
// given here reach it, from 127.0.0.1.
package qemu

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/fat32"
)

// Forward forwards host TCP port 127.0.0.1:Host to the guest's port Guest.
type Forward struct {
	Host, Guest int
}

// Config says what to boot.
type Config struct {
	// Image is the SD-card image. It is never written: the guest writes to a
	// qcow2 overlay in WorkDir.
	Image string
	// WorkDir holds the overlay, the extracted kernel and the patched
	// device tree.
	WorkDir string
	// Forwards are the host ports that reach the guest.
	Forwards []Forward
	// Console receives everything the guest prints on its serial console.
	Console io.Writer
	// TryBoot boots the way the firmware does after a tryboot reboot:
	// tryboot.txt instead of config.txt.
	TryBoot bool
	// MAC is the guest's Ethernet address (default b8:27:eb:00:00:01, a
	// Raspberry Pi prefix).
	MAC string
	// Machine is the emulated model: "raspi3b" (the default) or "raspi2b";
	// see MachineForBoard.
	Machine string
}

// Binary is the QEMU executable for the Pi 3 machine.
const Binary = "qemu-system-aarch64"

// VM is a running guest.
type VM struct {
	cmd     *exec.Cmd
	console *syncBuffer
	done    chan struct{}
	err     error
}

// Start boots cfg.Image. The guest runs until Stop, until it powers off or
// panics (-no-reboot), or until ctx is done.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	mach, err := MachineNamed(cfg.Machine)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(mach.Binary); err != nil {
		return nil, fmt.Errorf("booting under QEMU needs %s (Debian package qemu-system-arm): %w", mach.Binary, err)
	}
	if cfg.MAC == "" {
		cfg.MAC = "b8:27:eb:00:00:01"
	}
	boot, err := extractBoot(cfg, mach)
	if err != nil {
		return nil, err
	}
	overlay := filepath.Join(cfg.WorkDir, "sd.qcow2")
	st, err := os.Stat(cfg.Image)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.Image)
	if err != nil {
		return nil, err
	}
	// QEMU's SD card model wants a power-of-two size: the overlay's virtual
	// size is the image's rounded up.
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", abs,
		overlay, strconv.FormatInt(pow2(st.Size()), 10)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("creating the SD card overlay: %v: %s", err, out)
	}
	netdev := "user,id=n0,restrict=on"
	for _, f := range cfg.Forwards {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.Host, f.Guest)
	}
	args := []string{"-M", mach.Name}
	args = append(args, mach.Accel...)
	args = append(args,
		"-kernel", boot.kernel,
		"-dtb", boot.dtb,
		"-append", boot.cmdline,
	)
	if boot.initrd != "" {
		args = append(args, "-initrd", boot.initrd)
	}
	args = append(args,
		"-drive", "file="+overlay+",if=sd,format=qcow2",
		"-netdev", netdev,
		"-device", "usb-net,netdev=n0,mac="+cfg.MAC,
		"-display", "none",
		"-monitor", "none",
		"-serial", "stdio",
		"-no-reboot",
	)
	vm := &VM{console: &syncBuffer{}, done: make(chan struct{})}
	vm.cmd = exec.CommandContext(ctx, mach.Binary, args...)
	var w io.Writer = vm.console
	if cfg.Console != nil {
		w = io.MultiWriter(vm.console, cfg.Console)
	}
	vm.cmd.Stdout, vm.cmd.Stderr = w, w
	vm.cmd.Stdin = nil
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := vm.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", mach.Binary, err)
	}
	go func() {
		vm.err = vm.cmd.Wait()
		close(vm.done)
	}()
	return vm, nil
}

// Console returns what the guest printed so far.
func (vm *VM) Console() string { return vm.console.String() }

// Done is closed when QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// WaitConsole waits until the console shows marker, QEMU exits, or timeout.
func (vm *VM) WaitConsole(marker string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(vm.console.String(), marker) {
			return nil
		}
		select {
		case <-vm.done:
			if strings.Contains(vm.console.String(), marker) {
				return nil
			}
			return fmt.Errorf("QEMU exited (%v) before the console showed %q", vm.err, marker)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("the console did not show %q within %v", marker, timeout)
}

// Stop ends QEMU (its own process group, by PID) and waits for it.
func (vm *VM) Stop() {
	select {
	case <-vm.done:
		return
	default:
	}
	syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-vm.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
		<-vm.done
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type bootFiles struct {
	kernel, dtb, initrd, cmdline string
}

// dtbName is the device tree QEMU's raspi3b boots with. The upstream
// bcm2837 tree reads zeros from the SD card; the downstream bcm2710 one
// works once its USB controller is switched to the dwc2 driver.
const dtbName = "bcm2710-rpi-3-b.dtb"

// extractBoot does the firmware's job: pick the slot from config.txt (or
// tryboot.txt), and copy its kernel, device tree and initramfs out of the
// FAT.
func extractBoot(cfg Config, mach Machine) (*bootFiles, error) {
	f, err := os.Open(cfg.Image)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sector := make([]byte, image.SectorSize)
	if _, err := f.ReadAt(sector, 0); err != nil {
		return nil, fmt.Errorf("reading %s: %w", cfg.Image, err)
	}
	m, err := image.ParseMBR(sector)
	if err != nil {
		return nil, err
	}
	p := m.Partitions[image.PartBoot-1]
	size := int64(p.Sectors) * image.SectorSize
	bfs, err := fat32.Open(io.NewSectionReader(f, int64(p.Start)*image.SectorSize, size), size)
	if err != nil {
		return nil, fmt.Errorf("reading the boot partition of %s: %w", cfg.Image, err)
	}
	cfgName := "config.txt"
	if cfg.TryBoot {
		cfgName = "tryboot.txt"
	}
	cfgTxt, err := fs.ReadFile(bfs, cfgName)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", cfgName, err)
	}
	bc := parseConfigTxt(string(cfgTxt), mach.Section)
	prefix := bc.prefix
	read := func(name string) ([]byte, error) {
		b, err := fs.ReadFile(bfs, strings.TrimPrefix(prefix+name, "/"))
		if err != nil {
			return nil, fmt.Errorf("reading %s%s from the boot partition: %w", prefix, name, err)
		}
		return b, nil
	}
	kernel, err := read(bc.kernel)
	if err != nil {
		return nil, err
	}
	dtbFile := bc.deviceTree
	if dtbFile == "" {
		dtbFile = mach.DefaultDTB
	}
	dtb, err := read(dtbFile)
	if err != nil {
		return nil, err
	}
	var initrd []byte
	if bc.initramfs != "" {
		if initrd, err = read(bc.initramfs); err != nil {
			return nil, err
		}
	}
	cmdline, err := read("cmdline.txt")
	if err != nil {
		return nil, err
	}
	bf := &bootFiles{
		kernel: filepath.Join(cfg.WorkDir, "kernel"),
		dtb:    filepath.Join(cfg.WorkDir, filepath.Base(dtbFile)),
		// QEMU 7.2 has no working Pi watchdog: a guest that opens
		// /dev/watchdog is reset at once, so its driver stays off here
		// (the image keeps the watchdog for real Pis; where the driver is
		// a module, loading it fails with EPERM and the boot goes on).
		cmdline: strings.TrimSpace(string(cmdline)) + " console=" + mach.Console + " initcall_blacklist=bcm2835_wdt_driver_init",
	}
	if err := os.WriteFile(bf.kernel, kernel, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(bf.dtb, dtb, 0o644); err != nil {
		return nil, err
	}
	if initrd != nil {
		bf.initrd = filepath.Join(cfg.WorkDir, "initrd")
		if err := os.WriteFile(bf.initrd, initrd, 0o644); err != nil {
			return nil, err
		}
	}
	if !mach.DwC2USB {
		return bf, nil
	}
	for _, kv := range [][2]string{{"compatible", "brcm,bcm2835-usb"}, {"dr_mode", "host"}} {
		out, err := exec.Command("fdtput", "-t", "s", bf.dtb, "/soc/usb@7e980000", kv[0], kv[1]).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("patching the device tree's USB node for QEMU (fdtput, Debian package device-tree-compiler): %v: %s", err, bytes.TrimSpace(out))
		}
	}
	return bf, nil
}

func pow2(n int64) int64 {
	p := int64(1)
	for p < n {
		p <<= 1
	}
	return p
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
