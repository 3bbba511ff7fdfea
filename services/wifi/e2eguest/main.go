//go:build linux

// Command e2eguest is the first /init of the Wi-Fi boot test's initramfs
// (cmd/piimage/cli/e2e_wifi_test.go), under qemu-system-aarch64 -M virt
// with Debian's arm64 kernel. It plays the radio's surroundings, which the
// Pi has in hardware and QEMU has not:
//
//  1. mounts /proc, /sys and /dev and loads the modules listed in
//     /lib/modules/e2e.load (virtio, the file systems, nftables, and
//     mac80211_hwsim, whose two simulated radios become wlan0 and wlan1);
//  2. starts Debian's hostapd (with its shared libraries in the
//     initramfs) on wlan1: an open network, the test access point;
//  3. waits for the access point to be up, then writes an empty
//     /lib/modules/piimage.load and executes /piimage-init, piimage's init,
//     as PID 1: it finds the initramfs, switches to the image's root
//     partition and boots the node, whose wlan0 joins the network.
//
// hostapd stays behind as a child of PID 1, in the old root.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "e2eguest: "+format+"\n", args...)
}

func main() {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && err != unix.EBUSY {
			say("mounting %s: %v", m.dst, err)
		}
	}
	loadModules("/lib/modules", "/lib/modules/e2e.load")
	if !waitFor(func() bool { _, err := os.Stat("/sys/class/net/wlan1"); return err == nil }, 10*time.Second) {
		say("no wlan1: mac80211_hwsim did not load")
	}
	startAP()
	if err := os.WriteFile("/lib/modules/piimage.load", nil, 0o644); err != nil {
		say("%v", err)
	}
	say("executing piimage's init")
	err := unix.Exec("/piimage-init", []string{"/init"}, os.Environ())
	say("exec /piimage-init: %v", err)
	for {
		time.Sleep(time.Hour)
	}
}

// loadModules loads the modules list names, in order, from dir.
func loadModules(dir, list string) {
	f, err := os.Open(list)
	if err != nil {
		say("%v", err)
		return
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		mf, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			say("%v", err)
			continue
		}
		err = unix.FinitModule(int(mf.Fd()), "", 0)
		mf.Close()
		if err != nil && err != unix.EEXIST {
			say("loading %s: %v", name, err)
			continue
		}
		n++
	}
	say("%d modules loaded", n)
}

// startAP starts hostapd on wlan1 and waits for the interface to be up.
func startAP() {
	conf := "interface=wlan1\ndriver=nl80211\nssid=piimage-e2e\nhw_mode=g\nchannel=1\n"
	if err := os.WriteFile("/hostapd.conf", []byte(conf), 0o644); err != nil {
		say("%v", err)
		return
	}
	cmd := exec.Command("/usr/sbin/hostapd", "/hostapd.conf")
	cmd.Env = []string{"LD_LIBRARY_PATH=/lib/aarch64-linux-gnu:/usr/lib/aarch64-linux-gnu"}
	// The console itself, not a pipe: this process becomes piimage's init
	// and would stop reading a pipe.
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		say("starting hostapd: %v", err)
		return
	}
	up := waitFor(func() bool {
		b, err := os.ReadFile("/sys/class/net/wlan1/operstate")
		return err == nil && strings.TrimSpace(string(b)) == "up"
	}, 20*time.Second)
	say("hostapd pid %d, access point up: %v", cmd.Process.Pid, up)
}

func waitFor(cond func() bool, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}
