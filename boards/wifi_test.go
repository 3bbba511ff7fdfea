package boards

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// symlinkDeb builds a .deb with regular files and symlinks (path ->
// "->target").
func symlinkDeb(t *testing.T, entries [][2]string) string {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		if target, ok := strings.CutPrefix(e[1], "->"); ok {
			tw.WriteHeader(&tar.Header{Name: "./" + e[0], Typeflag: tar.TypeSymlink, Linkname: target})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: "./" + e[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e[1]))})
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "x.deb")
	if err := os.WriteFile(p, makeAr([2]string{"debian-binary", "2.0\n"}, [2]string{"data.tar", tb.String()}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDebFiles: symlinks are dereferenced (relative, chained, absolute
// inside the package); dangling, escaping and looping ones are left out.
func TestDebFiles(t *testing.T) {
	deb := symlinkDeb(t, [][2]string{
		{"lib/firmware/cypress/cyfmac43455-sdio.bin", "FIRMWARE"},
		{"lib/firmware/brcm/brcmfmac43455-sdio.raspberrypi,3-model-b-plus.txt", "NVRAM"},
		{"usr/share/doc/x/copyright", "text"},
		{"lib/firmware/brcm/brcmfmac43455-sdio.bin", "->../cypress/cyfmac43455-sdio.bin"},
		{"lib/firmware/brcm/brcmfmac43455-sdio.raspberrypi,3-model-a-plus.txt", "->brcmfmac43455-sdio.raspberrypi,3-model-b-plus.txt"},
		{"lib/firmware/brcm/chained.bin", "->brcmfmac43455-sdio.bin"},
		{"lib/firmware/brcm/absolute.bin", "->/lib/firmware/cypress/cyfmac43455-sdio.bin"},
		{"lib/firmware/brcm/dangling.bin", "->nothing.bin"},
		{"lib/firmware/brcm/escape.bin", "->../../../../etc/passwd"},
		{"lib/firmware/brcm/loop1", "->loop2"},
		{"lib/firmware/brcm/loop2", "->loop1"},
	})
	got, err := DebFiles(deb, func(n string) bool { return strings.HasPrefix(n, "lib/firmware/brcm/") })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"lib/firmware/brcm/brcmfmac43455-sdio.bin":                            "FIRMWARE",
		"lib/firmware/brcm/brcmfmac43455-sdio.raspberrypi,3-model-b-plus.txt": "NVRAM",
		"lib/firmware/brcm/brcmfmac43455-sdio.raspberrypi,3-model-a-plus.txt": "NVRAM",
		"lib/firmware/brcm/chained.bin":                                       "FIRMWARE",
		"lib/firmware/brcm/absolute.bin":                                      "FIRMWARE",
	}
	if len(got) != len(want) {
		t.Errorf("got %d files, want %d: %v", len(got), len(want), keys(got))
	}
	for n, w := range want {
		if string(got[n]) != w {
			t.Errorf("%s = %q, want %q", n, got[n], w)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestFetchDebFiles: a package is fetched by its pool path from a mirror,
// verified, and a missing file named.
func TestFetchDebFiles(t *testing.T) {
	deb := symlinkDeb(t, [][2]string{
		{"lib/firmware/regulatory.db-upstream", "DB"},
		{"lib/firmware/regulatory.db.p7s-upstream", "SIG"},
	})
	data, _ := os.ReadFile(deb)
	sum := sha256.Sum256(data)
	p := DebianPackage{Name: "wireless-regdb", Version: "1", Arch: "all", Filename: "pool/main/w/wireless-regdb/x.deb", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debian/"+p.Filename {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	src := DebianSource{Mirrors: []string{srv.URL + "/debian"}, CacheDir: t.TempDir()}
	got, err := fetchDebFiles(context.Background(), src, p, "lib/firmware/", []string{"regulatory.db-upstream", "regulatory.db.p7s-upstream"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0]) != "DB" || string(got[1]) != "SIG" {
		t.Errorf("got %q", got)
	}
	if _, err := fetchDebFiles(context.Background(), src, p, "lib/firmware/", []string{"regulatory.bin"}); err == nil || !strings.Contains(err.Error(), "has no lib/firmware/regulatory.bin") {
		t.Errorf("missing file: %v", err)
	}
}

func TestHasWiFi(t *testing.T) {
	for name, want := range map[string]bool{"pi2": false, "pi3": true, "pi4": true} {
		b := all[name]
		if b.HasWiFi() != want {
			t.Errorf("%s: HasWiFi = %v", name, !want)
		}
		if !want {
			if _, err := b.FetchWiFi(context.Background(), DebianSource{}, ".."); err == nil {
				t.Errorf("%s: FetchWiFi without Wi-Fi: no error", name)
			}
		}
	}
}

// TestWiFiModulesOfKernelRPi checks, on the pinned kernel.rpi, that
// cfg80211 is built in and that the load order satisfies modules.dep.
func TestWiFiModulesOfKernelRPi(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the kernel.rpi module")
	}
	dir, err := Fetch(context.Background(), "..", KernelRPi)
	if err != nil {
		t.Fatal(err)
	}
	rels, _ := filepath.Glob(filepath.Join(dir, "lib", "modules", "*"))
	if len(rels) != 1 {
		t.Fatalf("releases %v", rels)
	}
	builtin, err := os.ReadFile(filepath.Join(rels[0], "modules.builtin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(builtin, []byte("kernel/net/wireless/cfg80211.ko\n")) {
		t.Error("cfg80211 is not built into the kernel: the load list lacks it")
	}
	f, err := os.Open(filepath.Join(rels[0], "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, d, _ := strings.Cut(sc.Text(), ":")
		deps[strings.TrimPrefix(mod, "kernel/")] = strings.Fields(d)
	}
	loaded := map[string]bool{}
	for _, m := range brcmfmacModules {
		d, ok := deps[m]
		if !ok {
			t.Errorf("%s is not in modules.dep", m)
		}
		for _, x := range d {
			if !loaded[strings.TrimPrefix(x, "kernel/")] {
				t.Errorf("%s needs %s, which loads later or not at all", m, x)
			}
		}
		loaded[m] = true
	}
	release := filepath.Base(rels[0])
	files, err := all["pi4"].wifiModules(context.Background(), "..")
	if err != nil {
		t.Fatal(err)
	}
	// Each module is for this kernel, and what its .modinfo depends on
	// loads before it.
	before := map[string]bool{}
	for _, f := range files[:len(files)-1] {
		mi, err := ParseModInfo(path.Base(f.Path), f.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(f.Data, []byte("vermagic="+release+" ")) {
			t.Errorf("%s is not built for %s", f.Path, release)
		}
		for _, d := range mi.Depends {
			if !before[d] {
				t.Errorf("%s depends on %s, which is not loaded before it", mi.Name, d)
			}
		}
		before[mi.Name] = true
	}
	if list := string(files[len(files)-1].Data); !strings.HasSuffix(list, "brcmutil.ko\nbrcmfmac.ko\nbrcmfmac-wcc.ko\nbrcmfmac-cyw.ko\n") {
		t.Errorf("load list:\n%s", list)
	}
}

// TestFetchWiFi fetches the pinned packages (cached after the first run)
// and checks every board's files.
func TestFetchWiFi(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads the firmware packages when not cached")
	}
	for _, name := range []string{"pi3", "pi4"} {
		files, err := all[name].FetchWiFi(context.Background(), DebianSource{}, "..")
		if err != nil {
			t.Fatal(err)
		}
		byPath := map[string][]byte{}
		for _, f := range files {
			byPath[f.Path] = f.Data
		}
		for _, want := range append(wifiFirmware[name], "../regulatory.db", "../regulatory.db.p7s") {
			p := path.Join("lib/firmware/brcm", want)
			if len(byPath[p]) == 0 {
				t.Errorf("%s: no %s", name, p)
			}
		}
		for _, chip := range []string{"43430", "43455"} {
			bin := byPath["lib/firmware/brcm/brcmfmac"+chip+"-sdio.bin"]
			if bin != nil && len(bin) < 100<<10 {
				t.Errorf("%s: the %s firmware is %d bytes: a symlink not followed?", name, chip, len(bin))
			}
		}
		if db := byPath["lib/firmware/regulatory.db"]; !bytes.HasPrefix(db, []byte("RGDB")) {
			t.Errorf("%s: regulatory.db does not start with RGDB", name)
		}
		if !strings.Contains(string(byPath[WiFiLoadList]), "brcmfmac-wcc.ko") {
			t.Errorf("%s: load list %q", name, byPath[WiFiLoadList])
		}
	}
}
