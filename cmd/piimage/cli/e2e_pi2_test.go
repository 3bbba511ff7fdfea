package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/piimage/piimage/boards/qemu"
)

// TestBootPi2UnderQEMU builds the QEMU test node for the 32-bit Pi 2
// (Debian's armhf kernel, an initramfs that loads its modules, then the
// squashfs root) and boots it under qemu-system-arm -M raspi2b, with the
// user network restricted (restrict=on) as in every boot test. The node
// must answer its status endpoint with the overlay's hostname and address.
// It answers in about 25-35 s here (10 s of that is the emulated CPU
// unpacking the xz-compressed kernel); the limit leaves room for a busy
// machine.
func TestBootPi2UnderQEMU(t *testing.T) {
	requireE2E(t)
	if _, err := exec.LookPath(qemu.BinaryARM); err != nil {
		t.Fatalf("PIIMAGE_E2E=1 but %s is missing (install qemu-system-arm)", qemu.BinaryARM)
	}
	img := filepath.Join(t.TempDir(), "qemu-test-pi2.img")
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"build", "--overlay", "../../../overlays/testdata/qemu.yaml", "--board", "pi2",
		"--out", img, "--src", srcTree}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("build: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	s, took, console := bootMachineAndStatus(t, img, "raspi2b", 150*time.Second)
	t.Logf("pi2 (raspi2b): first status answer %.1fs after QEMU started", took.Seconds())
	if s.Hostname != "qemu-test" {
		t.Errorf("hostname = %q, want qemu-test", s.Hostname)
	}
	if !hasAddress(s, "eth0", "10.0.2.15/24") {
		t.Errorf("addresses = %+v, want eth0 10.0.2.15/24", s.Addresses)
	}
	if s.Overlay.Source != "boot" || s.Slot != "a" {
		t.Errorf("overlay source %q, slot %q; want boot, a", s.Overlay.Source, s.Slot)
	}
	// The init really came through the initramfs: it loaded the modules
	// and handed over to the root's /init.
	// Its kernel has nftables as modules: the firewall must be in.
	for _, want := range []string{"kernel modules loaded", "leaving the initramfs", "firewall installed"} {
		if !bytes.Contains([]byte(console), []byte(want)) {
			t.Errorf("console lacks %q", want)
		}
	}
}

// bootMachineAndStatus boots img on machine and returns the first /status
// answer, how long after QEMU's start it came, and the console so far.
func bootMachineAndStatus(t *testing.T, img, machine string, limit time.Duration) (statusReply, time.Duration, string) {
	t.Helper()
	port, err := qemu.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit+30*time.Second)
	defer cancel()
	start := time.Now()
	vm, err := qemu.Start(ctx, qemu.Config{
		Image:    img,
		WorkDir:  t.TempDir(),
		Machine:  machine,
		Forwards: []qemu.Forward{{Host: port, Guest: 9000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		vm.Stop()
		if t.Failed() {
			t.Logf("console:\n%s", tail(vm.Console(), 8000))
		}
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := start.Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-vm.Done():
			t.Fatalf("QEMU exited before the node answered")
		default:
		}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				var s statusReply
				if err := json.Unmarshal(body, &s); err != nil {
					t.Fatalf("status is not JSON: %v\n%s", err, body)
				}
				return s, time.Since(start), vm.Console()
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("no answer from the node's status endpoint within %v", limit)
	return statusReply{}, 0, ""
}
