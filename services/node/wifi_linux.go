package node

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The Wi-Fi driver on the root filesystem, written by the builder
// (rootfs.WiFiModulesDir) when the overlay has Wi-Fi: the module files and
// their load order. There is no modprobe: the init loads them itself.
const (
	wifiModulesDir  = "/lib/modules/wifi"
	wifiModulesList = "/lib/modules/wifi/load"
	// wifiAppearWait is how long wlan0 may take to appear after the
	// driver loads (it loads the radio's firmware first).
	wifiAppearWait = 10 * time.Second
)

// loadWiFiDriver loads the Wi-Fi modules when this init is PID 1 and the
// root has them; failures are said on the console and Wi-Fi goes on
// trying (a module already loaded, or built in, is fine).
func (r *instance) loadWiFiDriver(ctx context.Context) {
	if os.Getpid() != 1 {
		return
	}
	f, err := os.Open(wifiModulesList)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		r.con.say("wlan0: %v", err)
		return
	}
	names, err := parseLoadList(f)
	f.Close()
	if err != nil {
		r.con.say("wlan0: reading %s: %v", wifiModulesList, err)
		return
	}
	loaded, errs := loadModules(wifiModulesDir, names, finitModule)
	for _, err := range errs {
		r.con.say("wlan0: %v", err)
	}
	r.log.Info("Wi-Fi modules loaded", "loaded", loaded, "of", len(names))
	if waitForLink(ctx, "wlan0", wifiAppearWait) {
		return
	}
	// brcmfmac asks for its vendor module (brcmfmac-wcc) with
	// request_module, which fails without modprobe; when its firmware
	// loaded before we loaded that module, the probe failed. Now that
	// it is loaded, probing again works.
	if n := reprobeSDIO("/sys/bus/sdio"); n > 0 {
		r.con.say("wlan0 did not appear; probed %d SDIO devices again", n)
	}
}

// waitForLink reports whether the interface exists within wait.
func waitForLink(ctx context.Context, name string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		if _, err := net.InterfaceByName(name); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// reprobeSDIO asks the kernel to probe every SDIO function of bus (the
// sysfs folder /sys/bus/sdio) that has no driver, and returns how many it
// asked for.
func reprobeSDIO(bus string) int {
	devs, err := os.ReadDir(filepath.Join(bus, "devices"))
	if err != nil {
		return 0
	}
	n := 0
	for _, d := range devs {
		if _, err := os.Stat(filepath.Join(bus, "devices", d.Name(), "driver")); err == nil {
			continue
		}
		if os.WriteFile(filepath.Join(bus, "drivers_probe"), []byte(d.Name()), 0) == nil {
			n++
		}
	}
	return n
}
