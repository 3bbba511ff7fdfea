package rootfs

import (
	"context"
	"io/fs"
	"log/slog"
	"net/netip"
	"testing"
	"testing/fstest"

	"github.com/piimage/piimage/boards"
	"github.com/piimage/piimage/overlays"
)

func wifiNode(ssid string) *overlays.Node {
	return &overlays.Node{Hostname: "web01", Role: overlays.RoleWeb, Interfaces: overlays.Interfaces{
		Eth0:  &overlays.Interface{Address: netip.MustParsePrefix("192.168.1.10/24")},
		Wlan0: &overlays.Interface{Address: netip.MustParsePrefix("192.168.1.20/24"), SSID: ssid},
	}}
}

// TestWithWiFi: only a node whose wlan0 joins a network, on a board with
// a radio, gets the Wi-Fi files.
func TestWithWiFi(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	pi2, _ := boards.Get("pi2")
	pi4, _ := boards.Get("pi4")
	for _, tt := range []struct {
		name  string
		node  *overlays.Node
		board boards.Board
	}{
		{"no wlan0", &overlays.Node{Hostname: "web01"}, pi4},
		{"wlan0 without ssid", wifiNode(""), pi4},
		{"pi2", wifiNode("home"), pi2},
	} {
		root := rootTree([]byte("init"), []byte("{}"), nil)
		before := len(root.(fstest.MapFS))
		got, err := withWiFi(context.Background(), Options{Node: tt.node, Board: tt.board, Log: log, SrcDir: ".."}, root)
		if err != nil || len(got.(fstest.MapFS)) != before {
			t.Errorf("%s: %d files, %v; want the root unchanged", tt.name, len(got.(fstest.MapFS)), err)
		}
	}
	if testing.Short() {
		t.Skip("fetches the Wi-Fi packages when not cached")
	}
	root, err := withWiFi(context.Background(), Options{Node: wifiNode("home"), Board: pi4, Log: log, SrcDir: ".."}, rootTree([]byte("init"), []byte("{}"), nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"lib/firmware/brcm/brcmfmac43455-sdio.bin",
		"lib/firmware/brcm/brcmfmac43455-sdio.clm_blob",
		"lib/firmware/brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.txt",
		"lib/firmware/regulatory.db",
		"lib/firmware/regulatory.db.p7s",
		"lib/modules/wifi/brcmfmac.ko",
		"lib/modules/wifi/load",
	} {
		st, err := fs.Stat(root, p)
		if err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
			t.Errorf("%s: %v, %v", p, st, err)
		}
	}
	for _, d := range []string{"lib", "lib/firmware", "lib/firmware/brcm", "lib/modules/wifi"} {
		if st, err := fs.Stat(root, d); err != nil || st.Mode() != fs.ModeDir|0o755 {
			t.Errorf("%s: %v, %v", d, st, err)
		}
	}
	if err := fstest.TestFS(root, "init", "lib/modules/wifi/load"); err != nil {
		t.Error(err)
	}
}
