package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/boards/qemu"
	"github.com/piimage/piimage/image"
)

// The boot tests run when PIIMAGE_E2E=1 (make test and CI set it): they
// build an image from overlays/testdata/qemu.yaml (10.0.2.15/24, QEMU's user
// network) and boot it under qemu-system-aarch64 -M raspi3b.
func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("PIIMAGE_E2E") != "1" {
		t.Skip("boot test: set PIIMAGE_E2E=1 (make e2e) to boot the image under QEMU")
	}
	for _, tool := range []string{qemu.Binary, "qemu-img", "fdtput"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("PIIMAGE_E2E=1 but %s is missing (install qemu-system-arm, qemu-utils, device-tree-compiler)", tool)
		}
	}
}

type statusReply struct {
	Hostname  string `json:"hostname"`
	Version   string `json:"version"`
	Slot      string `json:"slot"`
	Addresses []struct {
		Interface string `json:"interface"`
		Address   string `json:"address"`
	} `json:"addresses"`
	Overlay struct {
		Source         string `json:"source"`
		FallbackReason string `json:"fallback_reason"`
	} `json:"overlay"`
}

// bootAndStatus boots img on QEMU's Pi 3 and returns the first /status
// answer and how long after QEMU's start it came.
func bootAndStatus(t *testing.T, img string) (statusReply, time.Duration) {
	t.Helper()
	s, took, _ := bootMachineAndStatus(t, img, "", 3*time.Minute)
	return s, took
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func buildQEMUImage(t *testing.T, out string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := Run(context.Background(), []string{"build", "--overlay", "../../../overlays/testdata/qemu.yaml", "--out", out, "--src", "../../.."}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("build: %v\n%s%s", err, stdout.String(), stderr.String())
	}
}

func TestBootUnderQEMU(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "qemu-test.img")
	buildQEMUImage(t, img)

	t.Run("overlay from the boot partition", func(t *testing.T) {
		s, took := bootAndStatus(t, img)
		t.Logf("first status answer %.1fs after QEMU started", took.Seconds())
		if s.Hostname != "qemu-test" {
			t.Errorf("hostname = %q, want qemu-test", s.Hostname)
		}
		if !hasAddress(s, "eth0", "10.0.2.15/24") {
			t.Errorf("addresses = %+v, want eth0 10.0.2.15/24", s.Addresses)
		}
		if s.Overlay.Source != "boot" {
			t.Errorf("overlay source = %q, want boot", s.Overlay.Source)
		}
	})

	t.Run("broken overlay falls back to the last good one", func(t *testing.T) {
		broken := filepath.Join(dir, "broken.img")
		copyFile(t, img, broken)
		replaceBootFile(t, broken, "node.yaml", []byte("hostname: [this is not valid\n"))
		s, _ := bootAndStatus(t, broken)
		if s.Hostname != "qemu-test" || !hasAddress(s, "eth0", "10.0.2.15/24") {
			t.Errorf("status = %+v, want the last good overlay's hostname and address", s)
		}
		if s.Overlay.Source != "last-good" || s.Overlay.FallbackReason == "" {
			t.Errorf("overlay = %+v, want source last-good with a reason", s.Overlay)
		}
	})
}

func hasAddress(s statusReply, iface, addr string) bool {
	for _, a := range s.Addresses {
		if a.Interface == iface && a.Address == addr {
			return true
		}
	}
	return false
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	out, err := exec.Command("cp", "--sparse=always", from, to).CombinedOutput()
	if err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
}

// replaceBootFile rewrites a file on the image's FAT with mtools, an
// independent implementation.
func replaceBootFile(t *testing.T, img, name string, data []byte) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mcopy", "-o", "-i", fmt.Sprintf("%s@@%d", img, image.Align), src, "::/"+name)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v: %s", err, strings.TrimSpace(string(out)))
	}
}
