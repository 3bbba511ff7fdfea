package rootfs

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"testing/fstest"

	"github.com/piimage/piimage/boards"
)

// withWiFi adds what Wi-Fi needs to the root tree when the overlay joins
// wlan0 to a network (it names an SSID) and the board has a radio (Pi 3,
// Pi 4): the radio's firmware, NVRAM and CLM blob in /lib/firmware/brcm/,
// the regulatory database in /lib/firmware/, and the brcmfmac modules with
// their load list in /lib/modules/wifi/ (boards.FetchWiFi). Other nodes'
// roots are unchanged.
func withWiFi(ctx context.Context, o Options, root fs.FS) (fs.FS, error) {
	if !o.Node.Interfaces.Wlan0.WiFi() {
		return root, nil
	}
	if !o.Board.HasWiFi() {
		o.Log.Warn("the overlay configures Wi-Fi but the board has no radio piimage supports; no Wi-Fi firmware added", "board", o.Board.Name)
		return root, nil
	}
	m, ok := root.(fstest.MapFS)
	if !ok {
		return nil, fmt.Errorf("adding Wi-Fi files: the root tree is a %T, not a map", root)
	}
	files, err := o.Board.FetchWiFi(ctx, boards.DebianSource{Log: o.Log}, o.SrcDir)
	if err != nil {
		return nil, fmt.Errorf("adding Wi-Fi files: %w", err)
	}
	dir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			if _, ok := m[d]; !ok {
				m[d] = dir
			}
		}
		m[f.Path] = &fstest.MapFile{Data: f.Data, Mode: 0o644}
	}
	o.Log.Info("Wi-Fi files added to the root", "board", o.Board.Name, "files", len(files))
	return m, nil
}
