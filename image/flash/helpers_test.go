package flash

import (
	"bytes"
	"context"
	"encoding/binary"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piimage/piimage/image"
)

const mib = 1 << 20

var testTime = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// Test image layout: 4 MiB gap, 64 MiB FAT, two 8 MiB slots, 32 MiB data.
var testLayout = image.Layout{DiskID: 0x1234abcd, TotalSize: 116 * mib, BootSize: 64 * mib, RootSize: 8 * mib}

const testOverlay = "# the web01 node\nhostname: web01 # keep this comment\nrole: web\ninterfaces:\n  eth0:\n    address: 192.168.1.10/24\n"

// random returns n deterministic pseudo-random bytes for seed.
func random(seed string, n int) []byte {
	var s [32]byte
	copy(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// testImage builds a small image like piimage build's into a temp file:
// node.yaml between other files on the FAT, a root slot, and a data
// partition with the overlay's last good copy (and a web root when web).
func testImage(t testing.TB, web bool) string {
	t.Helper()
	boot := fstest.MapFS{
		"bootcode.bin":       {Data: random("bootcode", 52_000)},
		"config.txt":         {Data: []byte("os_prefix=slot-a/\n")},
		"node.yaml":          {Data: []byte(testOverlay)},
		"start.elf":          {Data: random("start", 300_000)},
		"slot-a/cmdline.txt": {Data: []byte("root=PARTUUID=1234abcd-02\n")},
		"slot-a/kernel8.img": {Data: random("kernel", 2_000_000)},
	}
	data := fstest.MapFS{
		".":                      {Mode: fs.ModeDir | 0o755},
		"piimage":                {Mode: fs.ModeDir | 0o700},
		"piimage/last-good.yaml": {Data: []byte(testOverlay), Mode: 0o600},
	}
	if web {
		data["www/index.html"] = &fstest.MapFile{Data: []byte("<h1>web01</h1>\n"), Mode: 0o644}
	}
	p := &image.Plan{
		Layout:  testLayout,
		Boot:    boot,
		Root:    fstest.MapFS{"init": {Data: random("init", 1_500_000), Mode: 0o755}},
		Data:    data,
		ModTime: testTime,
	}
	path := filepath.Join(t.TempDir(), "test.img")
	if _, err := image.Write(context.Background(), path, p); err != nil {
		t.Fatal(err)
	}
	return path
}

// openTestImage opens a test image and closes it at the end of the test.
func openTestImage(t testing.TB, web bool) (*Image, string) {
	t.Helper()
	path := testImage(t, web)
	im, err := OpenImage(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	return im, path
}

// readAll returns the image's bytes with its changes.
func readAll(t testing.TB, im *Image) []byte {
	t.Helper()
	b := make([]byte, im.Size())
	if _, err := im.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// needTool skips the test when a command is missing.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install dosfstools mtools e2fsprogs)", name)
	}
	return p
}

// run runs a command and returns its standard output, failing on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(needTool(t, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s%s", name, args, err, out, stderr.Bytes())
	}
	return string(out)
}

// partitionFile copies partition n of the disk (file or device) at path
// into a temp file, for tools that take no offset.
func partitionFile(t testing.TB, path string, n int) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sec := make([]byte, 512)
	if _, err := f.ReadAt(sec, 0); err != nil {
		t.Fatal(err)
	}
	m, err := image.ParseMBR(sec)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Partitions[n-1]
	buf := make([]byte, int64(p.Sectors)*512)
	if _, err := f.ReadAt(buf, int64(p.Start)*512); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "p"+strconv.Itoa(n)+".img")
	if err := os.WriteFile(out, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkFAT runs fsck.fat -n on the boot partition of the disk at path and
// returns node.yaml as mtype prints it.
func checkFAT(t testing.TB, path string) string {
	t.Helper()
	p1 := partitionFile(t, path, 1)
	out, err := exec.Command(needTool(t, "fsck.fat"), "-n", p1).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.fat -n: %v\n%s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 2 || !strings.Contains(lines[1], " files, ") {
		t.Fatalf("fsck.fat -n: not clean:\n%s", out)
	}
	return run(t, "mtype", "-i", p1, "::/node.yaml")
}

// checkData runs e2fsck -fn on the data partition of the disk at path and
// returns the last good overlay as debugfs prints it.
func checkData(t testing.TB, path string) string {
	t.Helper()
	p4 := partitionFile(t, path, 4)
	run(t, "e2fsck", "-fn", p4)
	return run(t, "debugfs", "-R", "cat /piimage/last-good.yaml", p4)
}

// fatRegions returns, for the boot partition of disk b, where its data
// area starts (after the reserved sectors and the FATs) and its cluster size.
func fatRegions(t testing.TB, b []byte) (dataOff, clusterSize int64) {
	t.Helper()
	m, err := image.ParseMBR(b[:512])
	if err != nil {
		t.Fatal(err)
	}
	p1 := int64(m.Partitions[0].Start) * 512
	bs := b[p1 : p1+512]
	le := binary.LittleEndian
	bps := int64(le.Uint16(bs[11:]))
	spc := int64(bs[13])
	reserved := int64(le.Uint16(bs[14:]))
	nfats := int64(bs[16])
	fatSize := int64(le.Uint32(bs[36:]))
	dataOff = p1 + (reserved+nfats*fatSize)*bps
	return dataOff, spc * bps
}

// checkOnlyOverlayChanged fails unless every byte where got differs from
// want lies in the boot partition's reserved sectors and FATs, its root
// directory's first cluster, or the clusters holding the old or new
// node.yaml.
func checkOnlyOverlayChanged(t testing.TB, want, got []byte, oldData, newData []byte) {
	t.Helper()
	dataOff, cs := fatRegions(t, want)
	m, _ := image.ParseMBR(want[:512])
	p1 := int64(m.Partitions[0].Start) * 512
	var allowed []Extent
	allowed = append(allowed, Extent{p1, dataOff - p1}, Extent{dataOff, cs})
	// The clusters of each copy, found piece by piece (the new one may be
	// fragmented); the pieces must be unique.
	for _, c := range []struct {
		disk, data []byte
	}{{want, oldData}, {got, newData}} {
		for lo := int64(0); lo < int64(len(c.data)); lo += cs {
			piece := c.data[lo:min(lo+cs, int64(len(c.data)))]
			i := bytes.Index(c.disk[dataOff:], piece)
			if i < 0 {
				t.Fatalf("node.yaml bytes %d.. not found on the disk", lo)
			}
			allowed = append(allowed, Extent{dataOff + int64(i), cs})
		}
	}
	n := 0
	for i := range want {
		if want[i] == got[i] {
			continue
		}
		ok := false
		for _, a := range allowed {
			if int64(i) >= a.Offset && int64(i) < a.End() {
				ok = true
			}
		}
		if !ok {
			if n < 5 {
				t.Errorf("byte %d differs (%#x -> %#x) outside the FAT tables, the root directory and node.yaml's clusters", i, want[i], got[i])
			}
			n++
		}
	}
	if n > 0 {
		t.Fatalf("%d bytes differ where they should not", n)
	}
}
