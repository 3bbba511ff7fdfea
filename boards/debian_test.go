package boards

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

func TestAptMirrors(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sources.list", `# one-line format
deb [arch=amd64,armhf signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian/ bookworm main
deb-src http://src.example/debian bookworm main
deb cdrom:[Debian]/ bookworm main
deb http://security.example/debian-security bookworm-security main # trailing comment
`)
	write("sources.list.d/debian.sources", `Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb deb-src
URIs: https://second.example/debian
 http://third.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no
`)
	write("sources.list.d/other.list.disabled", "deb http://ignored.example/debian bookworm main\n")
	got, err := AptMirrors(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://mirror.example/debian", "https://second.example/debian", "http://third.example/debian", "http://security.example/debian-security"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AptMirrors = %q\nwant %q", got, want)
	}
	if _, err := AptMirrors(t.TempDir()); err == nil || !strings.Contains(err.Error(), "PIIMAGE_DEBIAN_MIRROR") {
		t.Errorf("AptMirrors(empty) = %v, want an error naming PIIMAGE_DEBIAN_MIRROR", err)
	}
}

// makeAr builds an ar archive of members.
func makeAr(members ...[2]string) []byte {
	var b bytes.Buffer
	b.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", m[0]+"/", "0", "0", "0", "100644", len(m[1]))
		b.WriteString(m[1])
		if len(m[1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func TestArReader(t *testing.T) {
	a := makeAr([2]string{"debian-binary", "2.0\n"}, [2]string{"odd", "abc"}, [2]string{"data.tar", "payload"})
	r := newArReader(bytes.NewReader(a))
	var names []string
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != m.Size {
			t.Errorf("%s: read %d of %d bytes", m.Name, len(b), m.Size)
		}
		names = append(names, m.Name+"="+string(b))
	}
	if want := []string{"debian-binary=2.0\n", "odd=abc", "data.tar=payload"}; !reflect.DeepEqual(names, want) {
		t.Errorf("members %q, want %q", names, want)
	}
	for _, bad := range [][]byte{nil, []byte("!<arch>\nshort"), []byte("not an archive")} {
		r := newArReader(bytes.NewReader(bad))
		if _, err := r.Next(); err == nil || err == io.EOF && len(bad) > len(arMagic) {
			t.Errorf("Next(%q) = %v, want an error", bad, err)
		}
	}
}

// makeKO builds a minimal 32-bit little-endian ELF relocatable file with a
// .modinfo section holding info (key=value strings).
func makeKO(info ...string) []byte {
	modinfo := []byte(strings.Join(info, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 52, 40
	modOff := ehsize
	strOff := modOff + len(modinfo)
	shOff := (strOff + len(shstr) + 3) &^ 3
	b := make([]byte, shOff+3*shentsize)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 1, 1, 1 // ELFCLASS32, little-endian, version
	le := binary.LittleEndian
	le.PutUint16(b[16:], 1)  // ET_REL
	le.PutUint16(b[18:], 40) // EM_ARM
	le.PutUint32(b[20:], 1)
	le.PutUint32(b[32:], uint32(shOff))
	le.PutUint16(b[40:], ehsize)
	le.PutUint16(b[46:], shentsize)
	le.PutUint16(b[48:], 3) // sections: null, .modinfo, .shstrtab
	le.PutUint16(b[50:], 2) // .shstrtab index
	copy(b[modOff:], modinfo)
	copy(b[strOff:], shstr)
	sh := func(i int, name, typ, off, size uint32) {
		s := b[shOff+i*shentsize:]
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], typ)
		le.PutUint32(s[16:], off)
		le.PutUint32(s[20:], size)
		le.PutUint32(s[32:], 1)
	}
	sh(1, 1, 1, uint32(modOff), uint32(len(modinfo))) // SHT_PROGBITS
	sh(2, 10, 3, uint32(strOff), uint32(len(shstr)))  // SHT_STRTAB
	return b
}

func TestParseModInfo(t *testing.T) {
	ko := makeKO("license=GPL", "softdep=pre: crc32c post: foo bar", "alias=fs-ext4", "alias=ext3",
		"depends=mbcache,jbd2,crc16", "intree=Y", "name=ext4", "vermagic=6.1.0-50-armmp SMP mod_unload ARMv7 p2v8 ")
	mi, err := ParseModInfo("kernel/fs/ext4/ext4.ko", ko)
	if err != nil {
		t.Fatal(err)
	}
	want := ModInfo{Name: "ext4", Path: "kernel/fs/ext4/ext4.ko", Depends: []string{"mbcache", "jbd2", "crc16"},
		SoftPre: []string{"crc32c"}, SoftPost: []string{"foo", "bar"}, Aliases: []string{"fs-ext4", "ext3"}}
	if !reflect.DeepEqual(mi, want) {
		t.Errorf("ParseModInfo = %+v\nwant %+v", mi, want)
	}
	// No name= (older kernels): the file name, with "-" as "_".
	mi, err = ParseModInfo("kernel/drivers/mmc/host/sdhci-iproc.ko", makeKO("depends=sdhci,sdhci-pltfm"))
	if err != nil || mi.Name != "sdhci_iproc" || !reflect.DeepEqual(mi.Depends, []string{"sdhci", "sdhci_pltfm"}) {
		t.Errorf("ParseModInfo = %+v, %v", mi, err)
	}
	if _, err := ParseModInfo("x.ko", []byte("not elf")); err == nil {
		t.Error("ParseModInfo accepted a non-ELF file")
	}
}

func testIndex() *ModuleIndex {
	return NewModuleIndex([]ModInfo{
		{Name: "ext4", Path: "fs/ext4.ko", Depends: []string{"mbcache", "jbd2", "crc16"}, SoftPre: []string{"crc32c"}},
		{Name: "jbd2", Path: "fs/jbd2.ko", Depends: []string{"crc16"}},
		{Name: "mbcache", Path: "fs/mbcache.ko"},
		{Name: "crc16", Path: "lib/crc16.ko"},
		{Name: "crc32c_generic", Path: "crypto/crc32c_generic.ko", Aliases: []string{"crc32c", "crypto-crc32c"}},
		{Name: "crc32c_zarch", Aliases: []string{"crc32c"}},
		{Name: "jbd2x", SoftPre: []string{"crc32c"}},
		{Name: "cdc_ether", Path: "net/cdc_ether.ko", Depends: []string{"usbnet", "usbcore"}},
		{Name: "usbnet", Path: "net/usbnet.ko", Depends: []string{"mii", "usbcore"}},
		{Name: "mii", Path: "net/mii.ko"},
		{Name: "usbcore", Path: "usb/usbcore.ko", Depends: []string{"usb_common"}},
		{Name: "a", Depends: []string{"b"}},
		{Name: "b", Depends: []string{"a"}},
		{Name: "soft1", SoftPost: []string{"soft2"}},
		{Name: "soft2", SoftPre: []string{"soft1", "missing"}},
	}, []string{"kernel/drivers/usb/common/usb-common.ko"})
}

func TestResolveModules(t *testing.T) {
	x := testIndex()
	tests := []struct {
		names []string
		want  []string
		err   string
	}{
		{[]string{"ext4"}, []string{"crc32c_generic", "mbcache", "crc16", "jbd2", "ext4"}, ""},
		{[]string{"cdc_ether", "ext4"}, []string{"mii", "usbcore", "usbnet", "cdc_ether", "crc32c_generic", "mbcache", "crc16", "jbd2", "ext4"}, ""},
		{[]string{"cdc-ether"}, []string{"mii", "usbcore", "usbnet", "cdc_ether"}, ""},
		{[]string{"crypto-crc32c", "crc32c_generic"}, []string{"crc32c_generic"}, ""},
		// An alias two modules share: the one already chosen serves.
		{[]string{"crc32c_zarch", "jbd2x"}, []string{"crc32c_zarch", "jbd2x"}, ""},
		{[]string{"jbd2x"}, []string{"crc32c_generic", "jbd2x"}, ""},
		{[]string{"usb_common"}, nil, ""},
		{[]string{"soft1"}, []string{"soft1", "soft2"}, ""},
		{[]string{"nosuch"}, nil, `"nosuch" is neither in the package nor built into the kernel`},
		{[]string{"a"}, nil, "cycle: a -> b -> a"},
	}
	for _, tt := range tests {
		got, err := x.Resolve(tt.names)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Resolve(%q) = %v, want error %q", tt.names, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tt.names, err)
			continue
		}
		var names []string
		for _, m := range got {
			names = append(names, m.Name)
		}
		if !reflect.DeepEqual(names, tt.want) {
			t.Errorf("Resolve(%q) = %q, want %q", tt.names, names, tt.want)
		}
	}
	// A missing hard dependency names the chain.
	x = NewModuleIndex([]ModInfo{{Name: "dwc2", Depends: []string{"udc_core"}}}, nil)
	if _, err := x.Resolve([]string{"dwc2"}); err == nil || !strings.Contains(err.Error(), `dwc2 depends on "udc_core"`) {
		t.Errorf("Resolve(dwc2) = %v", err)
	}
}

// fakeDeb builds a .deb whose data.tar holds files (path -> contents).
func fakeDeb(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	dirs := map[string]bool{}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	// Sorted, folders first, like dpkg-deb.
	sortStrings(names)
	for _, n := range names {
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
			}
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sortStrings(dl)
	for _, d := range dl {
		tw.WriteHeader(&tar.Header{Name: "./" + d + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: "./" + n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n]))})
		tw.Write(files[n])
	}
	tw.WriteHeader(&tar.Header{Name: "./boot/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
	tw.Close()
	return makeAr([2]string{"debian-binary", "2.0\n"}, [2]string{"control.tar.gz", "x"}, [2]string{"data.tar", tb.String()})
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// testKernel is a fake kernel package with a zImage, a device tree and
// four modules, and the DebianKernel that pins it.
func testKernel(t *testing.T) ([]byte, DebianKernel) {
	zimage := make([]byte, 64)
	binary.LittleEndian.PutUint32(zimage[0x24:], 0x016f2818)
	rel := "6.1.0-9-armmp"
	mods := "lib/modules/" + rel + "/"
	deb := fakeDeb(t, map[string][]byte{
		"boot/vmlinuz-" + rel:                                 zimage,
		"boot/System.map-" + rel:                              []byte("skipped"),
		"usr/lib/linux-image-" + rel + "/bcm2836-rpi-2-b.dtb": []byte("dtb"),
		"usr/lib/linux-image-" + rel + "/am335x-bone.dtb":     []byte("not kept"),
		mods + "kernel/fs/squashfs/squashfs.ko":               makeKO("name=squashfs"),
		mods + "kernel/drivers/net/usb/cdc_ether.ko":          makeKO("name=cdc_ether", "depends=usbnet"),
		mods + "kernel/drivers/net/usb/usbnet.ko":             makeKO("name=usbnet", "depends=mii"),
		mods + "kernel/drivers/net/mii.ko":                    makeKO("name=mii"),
		mods + "modules.builtin":                              []byte("kernel/drivers/mmc/core/mmc_block.ko\n"),
	})
	sum := sha256.Sum256(deb)
	return deb, DebianKernel{
		Package: DebianPackage{Name: "linux-image-" + rel, Version: "6.1.1-1", Arch: "armhf",
			Filename: "pool/main/l/linux/linux-image-" + rel + "_6.1.1-1_armhf.deb", Size: int64(len(deb)), SHA256: hex.EncodeToString(sum[:])},
		Release: rel,
		Modules: []string{"cdc_ether", "squashfs", "mmc_block"},
	}
}

// TestDebianKernelFetch serves a fake package from a loopback HTTP server:
// the first Fetch downloads, verifies and unpacks it; the second works
// with the server gone; a wrong pin is refused.
func TestDebianKernelFetch(t *testing.T) {
	deb, k := testKernel(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/debian/"+k.Package.Filename {
			http.NotFound(w, r)
			return
		}
		w.Write(deb)
	}))
	defer srv.Close()
	cache := t.TempDir()
	src := DebianSource{Mirrors: []string{srv.URL + "/missing", srv.URL + "/debian/"}, CacheDir: cache}
	got, err := k.Fetch(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range got.Modules {
		names = append(names, m.Name)
		if _, err := os.Stat(m.Path); err != nil {
			t.Errorf("module %s: %v", m.Name, err)
		}
	}
	if want := []string{"mii", "usbnet", "cdc_ether", "squashfs"}; !reflect.DeepEqual(names, want) {
		t.Errorf("modules %q, want %q", names, want)
	}
	head, err := os.ReadFile(got.Image)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckKernelArch(head, "arm"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(got.DTBDir, "bcm2836-rpi-2-b.dtb")); err != nil {
		t.Error(err)
	}
	for _, skipped := range []string{"usr/lib/linux-image-" + k.Release + "/am335x-bone.dtb", "boot/link", "boot/System.map-" + k.Release} {
		if _, err := os.Lstat(filepath.Join(cache, "debian", k.Package.String(), skipped)); err == nil {
			t.Errorf("the cache keeps %s", skipped)
		}
	}
	if got.Source != k.Package.String() {
		t.Errorf("Source = %q", got.Source)
	}

	// Cached: no server needed.
	srv.Close()
	n := hits.Load()
	if _, err := k.Fetch(context.Background(), src); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if hits.Load() != n {
		t.Error("second Fetch downloaded again")
	}

	// A pin that does not match what the mirror serves.
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(deb) }))
	defer srv2.Close()
	bad := k
	bad.Package.SHA256 = strings.Repeat("0", 64)
	_, err = bad.Fetch(context.Background(), DebianSource{Mirrors: []string{srv2.URL}, CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("Fetch with a wrong hash = %v, want a SHA-256 error", err)
	}
}

// TestDebianFetchOfflineNamesThePackage: an empty cache and no reachable
// mirror give an error that names the package and what to do.
func TestDebianFetchOfflineNamesThePackage(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	_, err := DebianArmmp.Fetch(context.Background(), DebianSource{Mirrors: []string{url}, CacheDir: t.TempDir()})
	if err == nil {
		t.Fatal("Fetch succeeded offline with an empty cache")
	}
	for _, want := range []string{DebianArmmp.Package.Name, DebianArmmp.Package.Version, "Debian mirror", "PIIMAGE_DEBIAN_MIRROR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// No apt sources at all.
	t.Setenv("PIIMAGE_DEBIAN_MIRROR", "")
	_, err = DebianArmmp.Fetch(context.Background(), DebianSource{AptDir: t.TempDir(), CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), DebianArmmp.Package.Name) || !strings.Contains(err.Error(), "PIIMAGE_DEBIAN_MIRROR") {
		t.Errorf("Fetch without apt sources = %v", err)
	}
}

func TestDebianFetchGoneFromMirror(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := DebianArmmp.Fetch(context.Background(), DebianSource{Mirrors: []string{srv.URL}, CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "apt-cache show "+DebianArmmp.Package.Name+":armhf") {
		t.Errorf("Fetch of a package the mirror lacks = %v, want advice to update the pin", err)
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "../../evil", Typeflag: tar.TypeReg, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	deb := filepath.Join(t.TempDir(), "evil.deb")
	os.WriteFile(deb, makeAr([2]string{"data.tar", tb.String()}), 0o644)
	err := extractDeb(deb, t.TempDir(), func(string) bool { return true }, nil)
	if err == nil || !strings.Contains(err.Error(), "leaves the package root") {
		t.Errorf("extractDeb = %v, want a refusal", err)
	}
}

// TestDebianArmmpPackage fetches the pinned armhf kernel (from the cache,
// or once from apt's Debian mirror: 43 MB, then about a minute of pure-Go
// xz) and checks what the pi2 board takes from it.
func TestDebianArmmpPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads and unpacks the armhf kernel package when not cached")
	}
	k, err := DebianArmmp.Fetch(context.Background(), DebianSource{})
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 64)
	f, err := os.Open(k.Image)
	if err != nil {
		t.Fatal(err)
	}
	f.Read(head)
	f.Close()
	if err := CheckKernelArch(head, "arm"); err != nil {
		t.Errorf("%s: %v", k.Image, err)
	}
	if err := CheckKernelArch(head, "arm64"); err == nil || !strings.Contains(err.Error(), "kernel is for arm, but the board's init is built for arm64") {
		t.Errorf("CheckKernelArch(armhf kernel, arm64) = %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(k.DTBDir, "bcm2836-rpi-2-b.dtb")); err != nil {
		t.Error(err)
	}
	pos := map[string]int{}
	for i, m := range k.Modules {
		pos[m.Name] = i
	}
	t.Logf("%d modules: %v", len(k.Modules), k.Modules)
	for _, name := range DebianArmmp.Modules {
		if _, ok := pos[name]; !ok {
			t.Errorf("module %s is not loaded", name)
		}
	}
	// Dependencies come first.
	for _, pair := range [][2]string{{"usbcore", "dwc2"}, {"usbnet", "smsc95xx"}, {"usbnet", "cdc_ether"}, {"mii", "usbnet"},
		{"sdhci", "sdhci_iproc"}, {"sdhci_pltfm", "sdhci_iproc"}, {"fat", "vfat"}, {"jbd2", "ext4"}, {"mbcache", "ext4"}, {"crc16", "ext4"}} {
		a, okA := pos[pair[0]]
		b, okB := pos[pair[1]]
		if !okA || !okB || a > b {
			t.Errorf("%s (at %d, %v) must load before %s (at %d, %v)", pair[0], a, okA, pair[1], b, okB)
		}
	}
}

// TestDebianKernelFetchConcurrently: builds that start together on an
// empty cache (parallel test packages) all get a complete unpacking.
func TestDebianKernelFetchConcurrently(t *testing.T) {
	deb, k := testKernel(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(deb) }))
	defer srv.Close()
	src := DebianSource{Mirrors: []string{srv.URL}, CacheDir: t.TempDir()}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			got, err := k.Fetch(context.Background(), src)
			if err == nil {
				for _, m := range got.Modules {
					if _, err = os.Stat(m.Path); err != nil {
						break
					}
				}
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestReplaceDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name, stamp string) string {
		d := filepath.Join(base, name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, stampFile), []byte(stamp), 0o644)
		os.WriteFile(filepath.Join(d, "who"), []byte(name), 0o644)
		return d
	}
	dir := filepath.Join(base, "pkg")
	// A stale unpacking is replaced.
	os.Rename(mk("stale", "old\n"), dir)
	if err := replaceDir(mk("new", "cur\n"), dir, "cur\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "who")); string(b) != "new" {
		t.Errorf("dir holds %q, want the new unpacking", b)
	}
	// A complete one stays.
	if err := replaceDir(mk("newer", "cur\n"), dir, "cur\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "who")); string(b) != "new" {
		t.Errorf("dir holds %q, want the complete unpacking kept", b)
	}
}
