package boards

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Wi-Fi on the Pi 3 and Pi 4: the Broadcom/Cypress radio on SDIO, driven by
// brcmfmac, which kernel.rpi has as modules (cfg80211 is built in). The
// radio needs its firmware, the board's NVRAM file and the CLM blob from
// /lib/firmware/brcm/, and cfg80211 the regulatory database from
// /lib/firmware/; the builder takes them from Debian's packages, pinned
// below, only for nodes whose overlay configures Wi-Fi.

// FirmwareBrcm80211 is Debian bookworm's Broadcom Wi-Fi firmware, pinned by
// the values of `apt-cache show firmware-brcm80211` (component
// non-free-firmware). It is fetched by its pool path, which is the same on
// every Debian mirror whichever components apt's sources list.
var FirmwareBrcm80211 = DebianPackage{
	Name:     "firmware-brcm80211",
	Version:  "20230210-5",
	Arch:     "all",
	Filename: "pool/non-free-firmware/f/firmware-nonfree/firmware-brcm80211_20230210-5_all.deb",
	Size:     5355748,
	SHA256:   "602b8c2dd176edbb187fe8d0d2ad8fadbfb7885e5fc3425b579c2d36ec72aa19",
}

// WirelessRegdb is Debian bookworm's regulatory database (`apt-cache show
// wireless-regdb`). Its regulatory.db-upstream is signed with the
// upstream maintainers' keys that mainline and Raspberry Pi kernels carry
// (the -debian copy is signed for Debian's kernels only).
var WirelessRegdb = DebianPackage{
	Name:     "wireless-regdb",
	Version:  "2026.05.30-1~deb12u1",
	Arch:     "all",
	Filename: "pool/main/w/wireless-regdb/wireless-regdb_2026.05.30-1~deb12u1_all.deb",
	Size:     12556,
	SHA256:   "3ff60d4ebc84fa4e202ce6359da3816a48ec1ea06b0820fdffda0396f33002c9",
}

// WiFiModulesDir is where the root filesystem keeps the Wi-Fi modules, and
// WiFiLoadList their load order, one file name a line (the init reads
// them: services/node/wifi_linux.go).
const (
	WiFiModulesDir = "lib/modules/wifi"
	WiFiLoadList   = WiFiModulesDir + "/load"
)

// brcmfmacModules are kernel.rpi's Wi-Fi modules (paths under
// lib/modules/RELEASE/kernel/), in load order: each after what its
// modules.dep line names. brcmfmac asks for its vendor module with
// request_module when it attaches the radio, which fails without
// modprobe, so the init loads both vendor modules itself, right after
// brcmfmac (WCC covers the Broadcom-vendor SDIO ids of the Pi 3 and 4's
// chips; CYW the Cypress ones).
var brcmfmacModules = []string{
	"drivers/net/wireless/broadcom/brcm80211/brcmutil/brcmutil.ko",
	"drivers/net/wireless/broadcom/brcm80211/brcmfmac/brcmfmac.ko",
	"drivers/net/wireless/broadcom/brcm80211/brcmfmac/wcc/brcmfmac-wcc.ko",
	"drivers/net/wireless/broadcom/brcm80211/brcmfmac/cyw/brcmfmac-cyw.ko",
}

// wifiFirmware lists, per board, the files of FirmwareBrcm80211's
// lib/firmware/brcm/ the radio loads: firmware, CLM blob and the NVRAM
// files of the models (brcmfmac picks the NVRAM by the device tree's
// compatible string). Several are symlinks into ../cypress/ in the
// package; the root gets their contents.
var wifiFirmware = map[string][]string{
	// Pi 3 model B: BCM43430 (CYW43438); 3 model B+ and 3 model A+:
	// CYW43455.
	"pi3": {
		"brcmfmac43430-sdio.bin",
		"brcmfmac43430-sdio.clm_blob",
		"brcmfmac43430-sdio.raspberrypi,3-model-b.txt",
		"brcmfmac43455-sdio.bin",
		"brcmfmac43455-sdio.clm_blob",
		"brcmfmac43455-sdio.raspberrypi,3-model-b-plus.txt",
		"brcmfmac43455-sdio.raspberrypi,3-model-a-plus.txt",
	},
	// Pi 4 model B: CYW43455. (The Pi 400's CYW43456 and the CM4's NVRAM
	// are not in the package.)
	"pi4": {
		"brcmfmac43455-sdio.bin",
		"brcmfmac43455-sdio.clm_blob",
		"brcmfmac43455-sdio.raspberrypi,4-model-b.txt",
	},
}

// regdbFiles maps WirelessRegdb's files to their names on the root.
var regdbFiles = [][2]string{
	{"lib/firmware/regulatory.db-upstream", "lib/firmware/regulatory.db"},
	{"lib/firmware/regulatory.db.p7s-upstream", "lib/firmware/regulatory.db.p7s"},
}

// HasWiFi reports whether the board has a radio the builder supports.
func (b Board) HasWiFi() bool {
	_, ok := wifiFirmware[b.Name]
	return ok && b.Debian == nil
}

// RootFile is a file for the root filesystem: its slash-separated path
// relative to the root, and its contents.
type RootFile struct {
	Path string
	Data []byte
}

// FetchWiFi returns the files Wi-Fi needs on the board's root: firmware,
// NVRAM and CLM blob under lib/firmware/brcm/, the regulatory database
// under lib/firmware/, and the brcmfmac modules with their load list under
// WiFiModulesDir. The Debian packages come from src (cached, verified by
// their pins), the modules from the board's kernel module (srcDir's go.sum
// verifies it).
func (b Board) FetchWiFi(ctx context.Context, src DebianSource, srcDir string) ([]RootFile, error) {
	names, ok := wifiFirmware[b.Name]
	if !ok || b.Debian != nil {
		return nil, fmt.Errorf("board %s: no Wi-Fi support (the Pi 3 and Pi 4 have it)", b.Name)
	}
	var out []RootFile
	fw, err := fetchDebFiles(ctx, src, FirmwareBrcm80211, "lib/firmware/brcm/", names)
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		out = append(out, RootFile{Path: "lib/firmware/brcm/" + n, Data: fw[i]})
	}
	var regNames []string
	for _, f := range regdbFiles {
		regNames = append(regNames, path.Base(f[0]))
	}
	reg, err := fetchDebFiles(ctx, src, WirelessRegdb, "lib/firmware/", regNames)
	if err != nil {
		return nil, err
	}
	for i, f := range regdbFiles {
		out = append(out, RootFile{Path: f[1], Data: reg[i]})
	}
	mods, err := b.wifiModules(ctx, srcDir)
	if err != nil {
		return nil, err
	}
	return append(out, mods...), nil
}

// wifiModules returns the brcmfmac modules of the board's kernel module
// and their load list.
func (b Board) wifiModules(ctx context.Context, srcDir string) ([]RootFile, error) {
	dir, err := Fetch(ctx, srcDir, b.Kernel)
	if err != nil {
		return nil, err
	}
	releases, _ := filepath.Glob(filepath.Join(dir, "lib", "modules", "*", "modules.dep"))
	if len(releases) != 1 {
		return nil, fmt.Errorf("%s: want one lib/modules/RELEASE/ with modules.dep, found %d", b.Kernel, len(releases))
	}
	modDir := filepath.Dir(releases[0])
	var out []RootFile
	var list strings.Builder
	list.WriteString("# Wi-Fi modules of " + b.Kernel.String() + ", in load order\n")
	for _, m := range brcmfmacModules {
		data, err := os.ReadFile(filepath.Join(modDir, "kernel", filepath.FromSlash(m)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Kernel, err)
		}
		out = append(out, RootFile{Path: WiFiModulesDir + "/" + path.Base(m), Data: data})
		list.WriteString(path.Base(m) + "\n")
	}
	return append(out, RootFile{Path: WiFiLoadList, Data: []byte(list.String())}), nil
}

// fetchDebFiles fetches package p and returns the contents of the named
// files of its folder dir, in order, symlinks followed.
func fetchDebFiles(ctx context.Context, src DebianSource, p DebianPackage, dir string, names []string) ([][]byte, error) {
	deb, err := src.Fetch(ctx, p)
	if err != nil {
		return nil, err
	}
	files, err := DebFiles(deb, func(name string) bool { return strings.HasPrefix(name, strings.TrimSuffix(dir, "/")) })
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(names))
	for i, n := range names {
		data, ok := files[dir+n]
		if !ok {
			return nil, fmt.Errorf("%s has no %s%s", p, dir, n)
		}
		out[i] = data
	}
	return out, nil
}

// maxDebFile bounds one file read from a package into memory.
const maxDebFile = 64 << 20

// DebFiles reads the .deb at debPath and returns the contents of its
// regular files and symlinks whose cleaned path (e.g.
// "lib/firmware/brcm/x.bin") keep accepts, by path. A symlink gets the
// contents of the file it points to (through other symlinks, anywhere in
// the package); a symlink that dangles or leaves the package is left out.
func DebFiles(debPath string, keep func(name string) bool) (map[string][]byte, error) {
	f, err := os.Open(debPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := debData(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", debPath, err)
	}
	regular := map[string][]byte{}
	links := map[string]string{}
	tr := tar.NewReader(data)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: data.tar: %w", debPath, err)
		}
		name := path.Clean(strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/"))
		if name == "." || !isLocalPath(name) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if h.Size > maxDebFile {
				continue
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %s: %w", debPath, name, err)
			}
			regular[name] = b
		case tar.TypeSymlink:
			links[name] = h.Linkname
		}
	}
	out := map[string][]byte{}
	for name, b := range regular {
		if keep(name) {
			out[name] = b
		}
	}
	for name := range links {
		if !keep(name) {
			continue
		}
		if b, err := followLink(name, regular, links); err == nil {
			out[name] = b
		}
	}
	return out, nil
}

// followLink resolves the symlink name of a package to a regular file's
// contents.
func followLink(name string, regular map[string][]byte, links map[string]string) ([]byte, error) {
	var seen []string
	for {
		target, ok := links[name]
		if !ok {
			if b, ok := regular[name]; ok {
				return b, nil
			}
			return nil, fmt.Errorf("%s: no such file in the package", name)
		}
		if slices.Contains(seen, name) || len(seen) > 16 {
			return nil, errors.New("symlink loop")
		}
		seen = append(seen, name)
		if path.IsAbs(target) {
			name = path.Clean(strings.TrimPrefix(target, "/"))
		} else {
			name = path.Join(path.Dir(name), target)
		}
		if !isLocalPath(name) {
			return nil, fmt.Errorf("%s leaves the package", target)
		}
	}
}
