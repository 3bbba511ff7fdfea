package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/fat32"
)

// A Loop is a Raspberry Pi that reboots: QEMU runs with -no-reboot, so a
// guest reboot ends it, and the Loop starts it again on the same card, the
// way the firmware would: from tryboot.txt once after a "0 tryboot"
// reboot, else from config.txt.
//
// The guest cannot restart the emulated board itself (its restart handler
// is the watchdog, off under QEMU), so the Loop ends QEMU when the kernel
// prints that it restarts or panics.
//
// The card is a raw copy of the image in the work folder. Each boot runs
// on a fresh qcow2 overlay over it (Start's usual setup); when the guest
// has rebooted, the overlay is committed into the card (qemu-img commit),
// so everything the guest wrote persists into the next boot, and the next
// boot reads its kernel and cmdline.txt from the card as the guest left
// it.

// LoopConfig says what a Loop boots.
type LoopConfig struct {
	// Config is passed to Start for every boot; its Image is copied to the
	// card and never written, its WorkDir holds the card and one folder
	// per boot, and its TryBoot applies to the first boot only.
	Config
	// MaxBoots bounds the boots; 0 means 10.
	MaxBoots int
}

// BootRecord is one boot of a Loop.
type BootRecord struct {
	// TryBoot says the firmware read tryboot.txt; Slot is the slot the
	// configuration file named ("a", "b").
	TryBoot bool
	Slot    string
	// Start is the offset of the boot's first byte in Loop.Console.
	Start int
	// End says how the boot ended: "" while it runs, else "reboot",
	// "reboot (tryboot)", "panic", "power off", "stopped" or an error.
	End string
}

// Loop is a running, rebooting guest.
type Loop struct {
	cfg     LoopConfig
	card    string
	console *syncBuffer

	mu       sync.Mutex
	boots    []BootRecord
	vm       *VM
	stopping bool
	done     chan struct{}
	err      error
}

// StartLoop copies cfg.Image to the card and boots it.
func StartLoop(ctx context.Context, cfg LoopConfig) (*Loop, error) {
	if cfg.MaxBoots == 0 {
		cfg.MaxBoots = 10
	}
	l := &Loop{cfg: cfg, card: filepath.Join(cfg.WorkDir, "card.img"), console: &syncBuffer{}, done: make(chan struct{})}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", cfg.Image, l.card).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying the image to the card: %v: %s", err, out)
	}
	vm, err := l.boot(ctx, 1, cfg.TryBoot)
	if err != nil {
		return nil, err
	}
	go l.run(ctx, vm)
	return l, nil
}

// Card is the card image. It changes between boots; read it once Done.
func (l *Loop) Card() string { return l.card }

// Console returns what every boot printed so far.
func (l *Loop) Console() string { return l.console.String() }

// Boots returns the boots so far.
func (l *Loop) Boots() []BootRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]BootRecord(nil), l.boots...)
}

// Done is closed when the loop has ended: the guest powered off, a boot
// failed, MaxBoots was reached, or Stop.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Err says why the loop ended (nil after Stop or a power off).
func (l *Loop) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// WaitConsole waits until the console shows marker at or after offset
// from (across reboots), the loop ends, or timeout.
func (l *Loop) WaitConsole(from int, marker string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s := l.console.String()
		if from < len(s) && strings.Contains(s[from:], marker) {
			return nil
		}
		select {
		case <-l.done:
			return fmt.Errorf("the loop ended (%v) before the console showed %q", l.Err(), marker)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the console did not show %q within %v", marker, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the running QEMU and the loop.
func (l *Loop) Stop() {
	l.mu.Lock()
	l.stopping = true
	vm := l.vm
	l.mu.Unlock()
	if vm != nil {
		vm.Stop()
	}
	<-l.done
}

// boot starts boot n on the card.
func (l *Loop) boot(ctx context.Context, n int, tryboot bool) (*VM, error) {
	cfg := l.cfg.Config
	cfg.Image = l.card
	cfg.WorkDir = filepath.Join(l.cfg.WorkDir, fmt.Sprintf("boot%d", n))
	cfg.TryBoot = tryboot
	var w io.Writer = l.console
	if l.cfg.Console != nil {
		w = io.MultiWriter(l.console, l.cfg.Console)
	}
	cfg.Console = w
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	slot, err := cardSlot(l.card, tryboot)
	if err != nil {
		return nil, err
	}
	rec := BootRecord{TryBoot: tryboot, Slot: slot, Start: len(l.console.String())}
	fmt.Fprintf(w, "\n=== qemu loop: boot %d from %s (slot %s)\n", n, map[bool]string{false: "config.txt", true: "tryboot.txt"}[tryboot], slot)
	vm, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.boots = append(l.boots, rec)
	l.vm = vm
	l.mu.Unlock()
	return vm, nil
}

// run restarts the guest after each reboot. The Pi's restart goes
// through its watchdog, which the QEMU boot disables (DESIGN.md), so a
// guest reboot halts instead of ending QEMU: the loop watches the console
// and ends QEMU itself once the kernel says it restarts (the guest has
// synced and unmounted by then) or panicked.
func (l *Loop) run(ctx context.Context, vm *VM) {
	defer close(l.done)
	for n := 1; ; n++ {
		rec := l.boots[len(l.boots)-1]
		end, restart, tryboot := l.watch(vm, rec.Start)
		l.mu.Lock()
		stopping := l.stopping
		l.mu.Unlock()
		if stopping || ctx.Err() != nil {
			end, restart = "stopped", false
		}
		err := commitOverlay(filepath.Join(l.cfg.WorkDir, fmt.Sprintf("boot%d", n)))
		l.mu.Lock()
		l.boots[len(l.boots)-1].End = end
		l.mu.Unlock()
		if err != nil {
			l.fail(err)
			return
		}
		if !restart {
			if end != "stopped" && end != "power off" {
				l.fail(fmt.Errorf("boot %d ended without a reboot: %s", n, end))
			}
			return
		}
		if n >= l.cfg.MaxBoots {
			l.fail(fmt.Errorf("the guest rebooted %d times: the loop's limit", n))
			return
		}
		next, err := l.boot(ctx, n+1, tryboot)
		if err != nil {
			l.fail(fmt.Errorf("boot %d: %w", n+1, err))
			return
		}
		vm = next
	}
}

// watch waits until vm ends, or its console (from offset start) shows a
// restart or a panic, then ends it and says how the boot ended.
func (l *Loop) watch(vm *VM, start int) (end string, restart, tryboot bool) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-vm.Done():
			return rebootKind(l.console.String()[start:])
		case <-tick.C:
		}
		if end, restart, tryboot := rebootKind(l.console.String()[start:]); restart {
			// Let the kernel print its last lines, then end QEMU (SIGTERM:
			// it flushes the disk).
			time.Sleep(500 * time.Millisecond)
			vm.Stop()
			return end, restart, tryboot
		}
	}
}

func (l *Loop) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
}

// rebootKind reads how a boot ended from its console: a reboot (with the
// "0 tryboot" command or not), a kernel panic (panic=10 reboots; a Pi
// reboots), a power off, or none of these.
func rebootKind(console string) (end string, restart, tryboot bool) {
	switch {
	case strings.Contains(console, "reboot: Restarting system with command '0 tryboot'"):
		return "reboot (tryboot)", true, true
	case strings.Contains(console, "reboot: Restarting system"):
		return "reboot", true, false
	case strings.Contains(console, "Kernel panic"):
		return "panic", true, false
	case strings.Contains(console, "reboot: Power down"):
		return "power off", false, false
	}
	return "QEMU exited without a reboot or power-off message", false, false
}

// commitOverlay writes the boot's overlay into the card and removes the
// boot's folder.
func commitOverlay(dir string) error {
	overlay := filepath.Join(dir, "sd.qcow2")
	if _, err := os.Stat(overlay); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if out, err := exec.Command("qemu-img", "commit", "-q", overlay).CombinedOutput(); err != nil {
		return fmt.Errorf("committing the guest's writes into the card: %v: %s", err, out)
	}
	return os.RemoveAll(dir)
}

// cardSlot returns the slot the firmware boots from the card.
func cardSlot(card string, tryboot bool) (string, error) {
	f, err := os.Open(card)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sector := make([]byte, image.SectorSize)
	if _, err := f.ReadAt(sector, 0); err != nil {
		return "", err
	}
	m, err := image.ParseMBR(sector)
	if err != nil {
		return "", err
	}
	p := m.Partitions[image.PartBoot-1]
	size := int64(p.Sectors) * image.SectorSize
	bfs, err := fat32.Open(io.NewSectionReader(f, int64(p.Start)*image.SectorSize, size), size)
	if err != nil {
		return "", fmt.Errorf("reading the card's boot partition: %w", err)
	}
	name := "config.txt"
	if tryboot {
		name = "tryboot.txt"
	}
	b, err := fs.ReadFile(bfs, name)
	if err != nil {
		return "", err
	}
	slot := ""
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "os_prefix=slot-"); ok {
			slot = strings.TrimSuffix(v, "/")
		}
	}
	return slot, nil
}
