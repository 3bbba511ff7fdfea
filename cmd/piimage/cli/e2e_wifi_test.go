package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piimage/piimage/boards"
	"github.com/piimage/piimage/boards/qemu"
	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/cpio"
	"github.com/piimage/piimage/rootfs"
)

// The Wi-Fi boot test: a pi3 image whose overlay joins wlan0 to an open
// network, booted under qemu-system-aarch64 -M virt with Debian's arm64
// kernel, whose mac80211_hwsim simulates two radios: wlan0 for the node,
// wlan1 for Debian's hostapd, the access point. The initramfs's first
// /init (services/wifi/e2eguest) loads the modules and starts hostapd,
// then executes piimage's init, which switches to the image's root and
// boots the node. The test waits for the console's "wlan0: connected"
// and reads the static address from /status through QEMU's user network
// (restrict=on: the guest reaches nothing but the port forward).
//
// WPA2-PSK cannot be tested here: hwsim lacks the 4-way handshake
// offload that the Pi's firmware has (README: "Wi-Fi on a real Pi").

// e2eArm64Kernel is Debian bookworm's arm64 kernel (`apt-cache show
// linux-image-6.1.0-50-arm64:arm64`), the same release as the Pi 2's
// armmp kernel, with the modules the test boots with.
var e2eArm64Kernel = boards.DebianKernel{
	Package: boards.DebianPackage{
		Name:     "linux-image-6.1.0-50-arm64",
		Version:  "6.1.176-1",
		Arch:     "arm64",
		Filename: "pool/main/l/linux-signed-arm64/linux-image-6.1.0-50-arm64_6.1.176-1_arm64.deb",
		Size:     59515068,
		SHA256:   "914f75b57a8e165d85fb910c3e2dcc7000a05a9fea3f42f90b26e8dd590d5f06",
	},
	Release: "6.1.0-50-arm64",
	Modules: []string{
		"virtio_mmio", "virtio_blk", "virtio_net",
		"squashfs", "vfat", "nls_cp437", "nls_ascii", "crc32c_generic", "ext4",
		"nf_tables", "nft_ct", "nft_limit", "nft_objref",
		"mac80211_hwsim",
	},
}

// e2eAPPackages are hostapd and the shared libraries it needs, arm64
// (`apt-cache show NAME:arm64`).
var e2eAPPackages = []boards.DebianPackage{
	{Name: "hostapd", Version: "2:2.10-12+deb12u3", Arch: "arm64", Filename: "pool/main/w/wpa/hostapd_2.10-12+deb12u3_arm64.deb", Size: 797100, SHA256: "876643852816092cfc9a4190cc83f54e2a7cba72bc18728c53c159941dd20c13"},
	{Name: "libnl-3-200", Version: "3.7.0-0.2+b1", Arch: "arm64", Filename: "pool/main/libn/libnl3/libnl-3-200_3.7.0-0.2+b1_arm64.deb", Size: 60172, SHA256: "72b85c8d07ddfd135a9a372f156500961f95ce109474e95a76e4de2a96f94401"},
	{Name: "libnl-genl-3-200", Version: "3.7.0-0.2+b1", Arch: "arm64", Filename: "pool/main/libn/libnl3/libnl-genl-3-200_3.7.0-0.2+b1_arm64.deb", Size: 21292, SHA256: "5e8a3d1881f003badc7ba25cfe022798f3c3498493056a404ea17423b7b7432d"},
	{Name: "libnl-route-3-200", Version: "3.7.0-0.2+b1", Arch: "arm64", Filename: "pool/main/libn/libnl3/libnl-route-3-200_3.7.0-0.2+b1_arm64.deb", Size: 168348, SHA256: "1131eb75cce6f3942e67e0461f88ed507d43442ec1307c10ab75bcf3e2f7dcab"},
	{Name: "libssl3", Version: "3.0.20-1~deb12u2", Arch: "arm64", Filename: "pool/main/o/openssl/libssl3_3.0.20-1~deb12u2_arm64.deb", Size: 1823624, SHA256: "a256e03cc3abd7243ac5c6ee91a9deb56478221ef0d3c2b0748551e13140c0bf"},
	{Name: "libc6", Version: "2.36-9+deb12u14", Arch: "arm64", Filename: "pool/main/g/glibc/libc6_2.36-9+deb12u14_arm64.deb", Size: 2324660, SHA256: "01f4330719fd4f65580e16ea5a0527f372fca750e8f588d26deaf09f2d3b1cf4"},
}

const wifiOverlay = `hostname: wifi-test
role: web
board: pi3
interfaces:
  eth0: {address: 10.0.2.15/24, gateway: 10.0.2.2}
  wlan0:
    address: 192.168.77.20/24
    gateway: 192.168.77.1
    ssid: piimage-e2e
    country: DE
admin: {port: 9000}
`

// wpa2Overlay is wifiOverlay with a WPA2 passphrase: hwsim's radio cannot
// offload the handshake.
var wpa2Overlay = strings.Replace(wifiOverlay, "    country: DE\n", "    country: DE\n    psk: \"correct horse battery\"\n", 1)

func TestWiFiUnderQEMU(t *testing.T) {
	if os.Getenv("PIIMAGE_E2E") != "1" {
		t.Skip("boot test: set PIIMAGE_E2E=1 to boot under QEMU")
	}
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		t.Skip("qemu-system-aarch64 is missing (Debian package qemu-system-arm)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	src := boards.DebianSource{}
	kernel, err := e2eArm64Kernel.Fetch(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	initrd := wifiInitramfs(t, ctx, src, kernel, dir)

	// The subtest names end up in QEMU's -drive path, which must hold no comma.
	t.Run("open network associates then gets its address", func(t *testing.T) {
		g := bootWiFi(t, ctx, wifiOverlay, kernel.Image, initrd)
		g.waitConsole(t, `wlan0: connected to "piimage-e2e"`)
		t.Logf("wlan0 connected %.1fs after QEMU started", time.Since(g.start).Seconds())
		st := wifiStatus(t, g.port, g.exited, true)
		if !hasAddress(st, "wlan0", "192.168.77.20/24") || !hasAddress(st, "eth0", "10.0.2.15/24") {
			t.Errorf("addresses = %+v, want wlan0 192.168.77.20/24 and eth0 10.0.2.15/24", st.Addresses)
		}
		c := g.con.String()
		for _, want := range []string{
			"AP-ENABLED",                     // hostapd's access point
			"wlan0: finit_module",            // the image's brcmfmac modules were tried (and refused by this kernel)
			"access point 02:00:00:00:01:00", // hwsim's second radio
			"192.168.77.20/24 configured",
		} {
			if !strings.Contains(c, want) {
				t.Errorf("console lacks %q", want)
			}
		}
	})

	t.Run("WPA2 without offload fails clearly and eth0 serves", func(t *testing.T) {
		g := bootWiFi(t, ctx, wpa2Overlay, kernel.Image, initrd)
		g.waitConsole(t, `wlan0: "piimage-e2e" failed: wlan0: WPA2-PSK offload not supported by this radio`)
		st := wifiStatus(t, g.port, g.exited, false)
		if !hasAddress(st, "eth0", "10.0.2.15/24") {
			t.Errorf("addresses = %+v, want eth0 10.0.2.15/24", st.Addresses)
		}
		for _, a := range st.Addresses {
			if a.Interface == "wlan0" && strings.HasPrefix(a.Address, "192.168.77.") {
				t.Errorf("wlan0 has %s without a connection", a.Address)
			}
		}
		if c := g.con.String(); strings.Contains(c, "correct horse battery") {
			t.Error("the console shows the passphrase")
		}
	})
}

// wifiGuest is a booted Wi-Fi test guest.
type wifiGuest struct {
	con    *lockedBuffer
	port   int
	start  time.Time
	exited chan struct{}
}

// bootWiFi builds a pi3 image of overlay and boots it under -M virt with
// the test's kernel and initramfs; the guest stops with the test.
func bootWiFi(t *testing.T, ctx context.Context, overlay, kernel, initrd string) *wifiGuest {
	t.Helper()
	dir := t.TempDir()
	ov := filepath.Join(dir, "wifi-test.yaml")
	if err := os.WriteFile(ov, []byte(overlay), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "wifi-test.img")
	var stdout, stderr bytes.Buffer
	if err := Run(ctx, []string{"build", "--overlay", ov, "--out", img, "--src", "../../.."}, &stdout, &stderr); err != nil {
		t.Fatalf("build: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	port, err := qemu.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmdline := fmt.Sprintf("console=ttyAMA0 root=PARTUUID=%s rootfstype=squashfs ro rootwait init=/init panic=-1",
		image.PartUUID(rootfs.DiskID("wifi-test"), 2))
	g := &wifiGuest{con: &lockedBuffer{}, port: port, start: time.Now(), exited: make(chan struct{})}
	qctx, qcancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(qctx, "qemu-system-aarch64",
		"-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1024",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-drive", "file="+img+",format=raw,if=none,id=hd", "-device", "virtio-blk-device,drive=hd",
		"-netdev", fmt.Sprintf("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:9000", port),
		"-device", "virtio-net-device,netdev=n0")
	cmd.Stdout, cmd.Stderr = g.con, g.con
	if err := cmd.Start(); err != nil {
		qcancel()
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		qcancel()
		<-g.exited
		if t.Failed() {
			t.Logf("console:\n%s", tail(g.con.String(), 12000))
		}
	})
	return g
}

// waitConsole waits up to 3 minutes for the console to show want.
func (g *wifiGuest) waitConsole(t *testing.T, want string) {
	t.Helper()
	for !strings.Contains(g.con.String(), want) {
		select {
		case <-g.exited:
			t.Fatalf("QEMU exited before the console showed %q", want)
		case <-time.After(500 * time.Millisecond):
		}
		if time.Since(g.start) > 3*time.Minute {
			t.Fatalf("the console did not show %q within 3 minutes", want)
		}
	}
}

// wifiStatus polls the node's /status until it answers (with a wlan0
// address when wantWlan0), or fails after a minute.
func wifiStatus(t *testing.T, port int, exited <-chan struct{}, wantWlan0 bool) statusReply {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	var last statusReply
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		select {
		case <-exited:
			t.Fatal("QEMU exited")
		default:
		}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/status", port))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &last) == nil {
				if !wantWlan0 {
					return last
				}
				for _, a := range last.Addresses {
					if a.Interface == "wlan0" {
						return last
					}
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no /status answer (with a wlan0 address: %v); last %+v", wantWlan0, last)
	return last
}

// wifiInitramfs writes the test's initramfs and returns its path: the
// e2eguest as /init, piimage's init as /piimage-init, the kernel's modules
// and hostapd with its libraries.
func wifiInitramfs(t *testing.T, ctx context.Context, src boards.DebianSource, k *boards.Kernel, dir string) string {
	t.Helper()
	pi3, err := boards.Get("pi3")
	if err != nil {
		t.Fatal(err)
	}
	initBin := filepath.Join(dir, "piimage-init")
	if err := rootfs.CompileInit(ctx, "../../..", pi3, initBin); err != nil {
		t.Fatal(err)
	}
	guestBin := filepath.Join(dir, "e2eguest")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", guestBin, "./services/wifi/e2eguest")
	build.Dir = "../../.."
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building e2eguest: %v\n%s", err, out)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	m := fstest.MapFS{
		"init":         {Data: read(guestBin), Mode: 0o755},
		"piimage-init": {Data: read(initBin), Mode: 0o755},
		"dev":          d,
		"dev/console":  {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Sys: cpio.Device{Major: 5, Minor: 1}},
		// hostapd stays in the initramfs's root after piimage's init
		// moves /dev away: it opens /dev/urandom for every station.
		"dev/null":    {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Sys: cpio.Device{Major: 1, Minor: 3}},
		"dev/random":  {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Sys: cpio.Device{Major: 1, Minor: 8}},
		"dev/urandom": {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Sys: cpio.Device{Major: 1, Minor: 9}},
		"proc":        d, "sys": d, "lib": d, "lib/modules": d,
	}
	var list strings.Builder
	for _, mod := range k.Modules {
		m["lib/modules/"+mod.Name+".ko"] = &fstest.MapFile{Data: read(mod.Path), Mode: 0o644}
		list.WriteString(mod.Name + ".ko\n")
	}
	m["lib/modules/e2e.load"] = &fstest.MapFile{Data: []byte(list.String()), Mode: 0o644}
	for _, p := range e2eAPPackages {
		deb, err := src.Fetch(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		files, err := boards.DebFiles(deb, func(name string) bool {
			return name == "usr/sbin/hostapd" || name == "lib/ld-linux-aarch64.so.1" ||
				strings.Contains(name, "aarch64-linux-gnu/") && strings.Contains(filepath.Base(name), ".so")
		})
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			for p := filepath.Dir(name); p != "."; p = filepath.Dir(p) {
				if m[p] == nil {
					m[p] = d
				}
			}
			m[name] = &fstest.MapFile{Data: data, Mode: 0o755}
		}
	}
	if m["usr/sbin/hostapd"] == nil || m["lib/ld-linux-aarch64.so.1"] == nil {
		t.Fatal("the packages lack hostapd or the dynamic loader")
	}
	var buf bytes.Buffer
	if _, err := cpio.WriteFS(&buf, m, cpio.Options{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lockedBuffer collects QEMU's console from its output goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
