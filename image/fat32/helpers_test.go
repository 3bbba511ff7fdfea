package fat32

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// testTime is the ModTime of every test volume.
var testTime = time.Date(2026, 11, 22, 13, 37, 41, 500_000_000, time.UTC)

const mib = 1 << 20

// content returns n deterministic pseudo-random bytes for seed.
func content(seed string, n int) []byte {
	var s [32]byte
	copy(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// smallTree is a tree that exercises names, nesting and empty entries.
func smallTree() fstest.MapFS {
	return fstest.MapFS{
		"BOOTCODE.BIN":                 {Data: content("bootcode", 52_456)},
		"config.txt":                   {Data: []byte("arm_64bit=1\nos_prefix=slot-a/\n")},
		"Mixed.Case":                   {Data: []byte("mixed")},
		"A long name with spaces.text": {Data: content("long", 3000)},
		".hidden":                      {Data: []byte("dot")},
		"empty":                        {},
		"ünïcödé-名前.txt":               {Data: []byte("unicode")},
		"a/b/c/d/deep.txt":             {Data: []byte("deep")},
		"a/b/sibling.bin":              {Data: content("sib", 513)},
		"emptydir":                     {Mode: fs.ModeDir | 0o755},
		"exactly-thirteen":             {Data: []byte("13 chars name")}, // 16 chars
		"abcdefghijklm":                {Data: []byte("13")},            // exactly one LFN entry, no terminator
		"x.tar.gz":                     {Data: []byte("gz")},
		"x.tar.bz":                     {Data: []byte("bz")},
		"very-long-name-" + strings.Repeat("x", 200) + ".txt": {Data: []byte("255")},
	}
}

// piTree is shaped like the Raspberry Pi boot partition. Tests share one
// copy of its 46 MB kernel and must not modify the map.
var piTree = sync.OnceValue(newPiTree)

func newPiTree() fstest.MapFS {
	m := fstest.MapFS{
		"bootcode.bin":               {Data: content("bootcode.bin", 52_456)},
		"start.elf":                  {Data: content("start.elf", 2_975_488)},
		"fixup.dat":                  {Data: content("fixup.dat", 7_314)},
		"config.txt":                 {Data: []byte("arm_64bit=1\nos_prefix=slot-a/\nenable_uart=1\n")},
		"node.yaml":                  {Data: []byte("hostname: lb1\nrole: lbmaster\n")},
		"slot-a/vmlinuz":             {Data: content("vmlinuz", 46_000_000)},
		"slot-a/cmdline.txt":         {Data: []byte("console=ttyAMA1 root=PARTUUID=1234abcd-02 rootwait\n")},
		"slot-a/bcm2710-rpi-3-b.dtb": {Data: content("dtb", 32_000)},
		"slot-b":                     {Mode: fs.ModeDir | 0o755},
	}
	for i := range 360 {
		name := fmt.Sprintf("slot-a/overlays/overlay-%03d-%s.dtbo", i, []string{"i2c", "spi", "vc4-kms-v3d", "Disable-BT", "uart"}[i%5])
		m[name] = &fstest.MapFile{Data: content(name, 200+i*37)}
	}
	m["slot-a/overlays/README"] = &fstest.MapFile{Data: []byte("overlays\n")}
	return m
}

// writeFile writes fsys as a FAT of size bytes into a new sparse temp file.
func writeFile(t testing.TB, size int64, fsys fs.FS, opts Options) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "fat.img")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := Write(f, size, fsys, opts); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return name
}

// sparseDisk is an in-memory disk that stores only the pages written and
// fails writes outside [0, size).
type sparseDisk struct {
	mu    sync.Mutex
	size  int64
	pages map[int64][]byte
}

const pageSize = 4096

func newSparseDisk(size int64) *sparseDisk {
	return &sparseDisk{size: size, pages: make(map[int64][]byte)}
}

func (d *sparseDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("write of %d bytes at %d outside [0,%d)", len(p), off, d.size)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for n := 0; n < len(p); {
		pg, in := (off+int64(n))/pageSize, (off+int64(n))%pageSize
		b := d.pages[pg]
		if b == nil {
			b = make([]byte, pageSize)
			d.pages[pg] = b
		}
		n += copy(b[in:], p[n:])
	}
	return len(p), nil
}

func (d *sparseDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for n < len(p) && off+int64(n) < d.size {
		pg, in := (off+int64(n))/pageSize, (off+int64(n))%pageSize
		k := min(int64(len(p)-n), pageSize-in, d.size-off-int64(n))
		if b := d.pages[pg]; b != nil {
			copy(p[n:n+int(k)], b[in:])
		} else {
			clear(p[n : n+int(k)])
		}
		n += int(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// bytes returns the whole disk.
func (d *sparseDisk) bytes() []byte {
	b := make([]byte, d.size)
	d.ReadAt(b, 0)
	return b
}

// compareTrees checks that got holds exactly the files and directories of
// want, with the same names (exact case) and bytes.
func compareTrees(t *testing.T, want, got fs.FS) {
	t.Helper()
	err := fs.WalkDir(want, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			we, err := fs.ReadDir(want, p)
			if err != nil {
				return err
			}
			ge, err := fs.ReadDir(got, p)
			if err != nil {
				return fmt.Errorf("reading directory %s back: %w", p, err)
			}
			if wn, gn := dirNames(we), dirNames(ge); !slices.Equal(wn, gn) {
				return fmt.Errorf("directory %s: got entries %q, want %q", p, gn, wn)
			}
			return nil
		}
		wb, err := fs.ReadFile(want, p)
		if err != nil {
			return err
		}
		gb, err := fs.ReadFile(got, p)
		if err != nil {
			return fmt.Errorf("reading %s back: %w", p, err)
		}
		if !bytes.Equal(wb, gb) {
			return fmt.Errorf("%s: read back %d bytes that differ from the %d written", p, len(gb), len(wb))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func dirNames(es []fs.DirEntry) []string {
	var n []string
	for _, e := range es {
		kind := "f"
		if e.IsDir() {
			kind = "d"
		}
		n = append(n, kind+":"+e.Name())
	}
	slices.Sort(n)
	return n
}

// needTool skips the test when a command is missing.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install dosfstools mtools)", name)
	}
	return p
}

// haveTools reports whether all the named commands are installed.
func haveTools(t testing.TB, names ...string) bool {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Logf("%s not installed: skipping its checks", n)
			return false
		}
	}
	return true
}

// fsckClean runs fsck.fat -n and fails on anything but a clean summary.
func fsckClean(t *testing.T, img string) {
	t.Helper()
	out, err := exec.Command(needTool(t, "fsck.fat"), "-n", img).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != 2 || !strings.Contains(lines[1], " files, ") {
		t.Fatalf("fsck.fat -n %s: %v\n%s", img, err, out)
	}
}

// mtools runs an mtools command and returns its output. mtools_skip_check
// is not set, so mtools applies its own consistency checks to our volumes.
func mtools(t *testing.T, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(needTool(t, tool), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", tool, args, err, out)
	}
	return string(out)
}

// mcopyAll extracts the whole volume with mcopy into a new directory.
func mcopyAll(t *testing.T, img string) string {
	t.Helper()
	dir := t.TempDir()
	mtools(t, "mcopy", "-s", "-n", "-i", img, "::/*", dir+"/")
	return dir
}
