package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/boards/qemu"
	"github.com/piimage/piimage/cmd/piimage/rollout"
	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/ota/otaimage"
	"github.com/piimage/piimage/services/node"
	"github.com/piimage/piimage/services/ota"
)

// buildSigned builds the QEMU test node's image with version and the
// signing key keyFile.
func buildSigned(t *testing.T, out, version, keyFile string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := []string{"build", "--overlay", srcTree + "/overlays/testdata/qemu.yaml", "--out", out, "--src", srcTree, "--version", version, "--key", keyFile}
	if err := Run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("piimage %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
}

func openImage(t *testing.T, p string) *otaimage.Image {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	img, err := otaimage.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// logWriter sends lines to t.Log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestOTAUnderQEMU boots v1, pushes a signed v2 (the node reboots into it
// through tryboot.txt and commits it), then a v3 that fails its health checks (the node rolls
// back to v2 by itself), then an image signed by another key (refused,
// nothing changes). The guest reboots for real: qemu.Loop restarts QEMU
// on the same card, choosing config.txt or tryboot.txt as the firmware.
func TestOTAUnderQEMU(t *testing.T) {
	requireE2E(t)
	start := time.Now()
	dir := t.TempDir()
	keys, other := filepath.Join(dir, "keys"), filepath.Join(dir, "other-keys")
	for _, d := range []string{keys, other} {
		if err := Run(context.Background(), []string{"keygen", "--keys", d}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	imgs := map[string]string{}
	for _, b := range []struct{ name, version, keys string }{
		{"v1", "v1", keys},
		{"v2", "v2", keys},
		{"v3", "v3" + node.TestUnhealthySuffix, keys},
		{"bad", "v4", other},
	} {
		imgs[b.name] = filepath.Join(dir, b.name+".img")
		buildSigned(t, imgs[b.name], b.version, filepath.Join(b.keys, keyFile))
	}
	// v2 goes through the Pi 4's path: tryboot.txt and a "0 tryboot"
	// reboot, which qemu.Loop plays the firmware for. Its release.json
	// says so (as a pi4 build's does), and the image is signed again.
	setTryBoot(t, imgs["v2"], filepath.Join(keys, keyFile))
	t.Logf("built 4 images in %.0fs", time.Since(start).Seconds())

	port, err := qemu.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cfg := qemu.Config{Image: imgs["v1"], WorkDir: filepath.Join(dir, "qemu"), Forwards: []qemu.Forward{{Host: port, Guest: 9000}}}
	if p := os.Getenv("PIIMAGE_E2E_CONSOLE"); p != "" {
		// Follow the guest's console in a file while the test runs.
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cfg.Console = f
	}
	loop, err := qemu.StartLoop(ctx, qemu.LoopConfig{Config: cfg, MaxBoots: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		loop.Stop()
		if t.Failed() {
			t.Logf("console:\n%s", tail(loop.Console(), 12000))
		}
	}()
	c, err := newAdminClient(fmt.Sprintf("127.0.0.1:%d", port), keys)
	if err != nil {
		t.Fatal(err)
	}
	bootStart := time.Now()
	st := waitNode(t, ctx, c, loop)
	t.Logf("v1 up: HTTPS admin API answered %.1fs after QEMU started; running slot %s", time.Since(bootStart).Seconds(), st.Booted)
	if st.Booted != "a" || rollout.SlotVersion(st, "a") != "v1" {
		t.Fatalf("status = %+v", st)
	}
	// The plain port still answers /status, and only that, from outside
	// the node.
	plainStatus(t, port, "v1")

	opts := rollout.PushOptions{Out: logWriter{t}, Poll: time.Second}

	// v2: committed.
	out, err := rollout.Push(ctx, c, openImage(t, imgs["v2"]), opts)
	if err != nil {
		t.Fatalf("update to v2: %v", err)
	}
	if out.Result != ota.ResultCommitted || out.Slot != "b" || out.Version != "v2" {
		t.Fatalf("update to v2: %+v", out)
	}
	t.Logf("RESULT v2: committed %.1fs after the update started, %d bytes sent (%.1f MB)", out.Took.Seconds(), out.Sent, float64(out.Sent)/1e6)
	plainStatus(t, port, "v2")

	// v3 fails its health checks: rolled back to v2 by the node itself.
	out, err = rollout.Push(ctx, c, openImage(t, imgs["v3"]), opts)
	if err != nil {
		t.Fatalf("update to v3: %v", err)
	}
	if out.Result != ota.ResultRolledBack || !strings.Contains(out.Reason, "on purpose") {
		t.Fatalf("update to v3: %+v", out)
	}
	t.Logf("RESULT v3: rolled back %.1fs after the update started (%s), %d bytes sent", out.Took.Seconds(), out.Reason, out.Sent)
	st = waitNode(t, ctx, c, loop)
	if st.Booted != "b" || rollout.SlotVersion(st, "b") != "v2" || !st.Slots[1].Config {
		t.Fatalf("after the rollback: %+v", st)
	}
	plainStatus(t, port, "v2")

	// Signed by another cluster's key: refused, nothing written.
	before := st
	_, err = rollout.Push(ctx, c, openImage(t, imgs["bad"]), opts)
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "not signed by a key this node trusts") {
		t.Fatalf("badly signed update: %v", err)
	}
	t.Logf("RESULT bad key: %v", err)
	st = waitNode(t, ctx, c, loop)
	if fmt.Sprint(st.Slots) != fmt.Sprint(before.Slots) || st.Last.ID != before.Last.ID {
		t.Errorf("a refused update changed the node: %+v, was %+v", st, before)
	}

	boots := loop.Boots()
	var trail []string
	for _, b := range boots {
		trail = append(trail, fmt.Sprintf("slot %s (tryboot %v) ended %q", b.Slot, b.TryBoot, b.End))
	}
	t.Logf("boots: %s", strings.Join(trail, "; "))
	if len(boots) != 4 || boots[1].Slot != "b" || !boots[1].TryBoot || boots[2].Slot != "a" || boots[2].TryBoot || boots[3].Slot != "b" {
		t.Errorf("boots: want a, b (v2 trial from tryboot.txt), a (v3 trial from config.txt), b (after the rollback)")
	}
	t.Logf("the whole test took %.0fs", time.Since(start).Seconds())
}

// setTryBoot marks the image's slot-a/release.json "tryboot": true with
// mtools and signs the image again with key.
func setTryBoot(t *testing.T, img, key string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	oi, err := otaimage.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := fs.ReadFile(oi.Boot(), "slot-a/release.json")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	rel = bytes.Replace(rel, []byte(`"version"`), []byte(`"tryboot": true, "version"`), 1)
	src := filepath.Join(t.TempDir(), "release.json")
	if err := os.WriteFile(src, rel, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mcopy", "-o", "-i", fmt.Sprintf("%s@@%d", img, image.Align), src, "::/slot-a/release.json")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v: %s", err, out)
	}
	if err := Run(context.Background(), []string{"sign", "--key", key, img}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if m := openImage(t, img).Manifest; !m.TryBoot {
		t.Fatal("the re-signed manifest does not say tryboot")
	}
}

// waitNode waits until the node's HTTPS admin API answers GET /ota.
func waitNode(t *testing.T, ctx context.Context, c *rollout.Client, loop *qemu.Loop) ota.Status {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-loop.Done():
			t.Fatalf("the QEMU loop ended: %v", loop.Err())
		default:
		}
		var st ota.Status
		if err := c.GetJSON(ctx, "/ota", &st); err == nil {
			return st
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("the node's HTTPS admin API did not answer within 3 minutes")
	return ota.Status{}
}

// plainStatus checks that plain HTTP /status reports version.
func plainStatus(t *testing.T, port int, version string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
	if err != nil {
		t.Errorf("plain /status: %v", err)
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"version": "`+version+`"`) {
		t.Errorf("plain /status = %d %s, want version %s", resp.StatusCode, b, version)
	}
}
