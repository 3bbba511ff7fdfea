package flash

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// System says where the kernel shows block devices, mounts and swap. The
// zero value means the running system's; tests point it at fake trees.
type System struct {
	// SysRoot is the sysfs mount; "" means /sys.
	SysRoot string
	// MountInfo is a mountinfo file; "" means /proc/self/mountinfo.
	MountInfo string
	// Swaps is the swap list; "" means /proc/swaps.
	Swaps string
}

func (s System) sys(parts ...string) string {
	root := s.SysRoot
	if root == "" {
		root = "/sys"
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// Device is a block device as sysfs describes it, with what Check needs
// to decide whether piimage may write it.
type Device struct {
	// Name is the kernel name (sdb, mmcblk0, loop3); Path the /dev path given.
	Name, Path string
	// Dev is "major:minor".
	Dev string
	// Size in bytes.
	Size int64
	// Model and Vendor as the device reports them (may be empty).
	Model, Vendor string
	// Removable is the verdict of the removable rule (see Check), and
	// RemovableWhy the evidence for it.
	Removable    bool
	RemovableWhy string
	// ReadOnly is set for write-protected media (the SD card lock switch).
	ReadOnly bool
	// Partition is set when the device is a partition of the disk Parent.
	Partition bool
	Parent    string
	// Partitions of the disk, in order.
	Partitions []Partition
	// Holders are devices built on the disk or its partitions (device
	// mapper, RAID, LVM), as "dm-0 (on sdb2)".
	Holders []string
	// Mounts lists where the disk or its partitions are mounted, as
	// "/dev/sdb1 on /media/boot".
	Mounts []string
	// System lists why the disk holds the running system: "/ is on it",
	// "swap /dev/sdb2".
	System []string
	// Virtual is set for devices without hardware behind them (loop, zram,
	// ram, dm); List leaves them out unless they are loop devices in use.
	Virtual bool
}

// Partition is one partition of a disk.
type Partition struct {
	Name   string
	Size   int64
	Mounts []string
}

// Describe returns a one-line summary: path, vendor and model, size.
func (d *Device) Describe() string {
	what := strings.TrimSpace(d.Vendor + " " + d.Model)
	if what == "" {
		what = "unknown model"
	}
	path := d.Path
	if path == "" {
		path = "/dev/" + d.Name
	}
	return fmt.Sprintf("%s (%s, %s)", path, what, FormatSize(d.Size))
}

// FormatSize writes n bytes the way card makers count: decimal units.
func FormatSize(n int64) string {
	switch {
	case n >= 1e12:
		return fmt.Sprintf("%.1f TB", float64(n)/1e12)
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ParseSize reads a size such as 256G, 256GB, 32GiB, 1T or a byte count.
// G, GB, T, TB, M, MB are decimal (as on card labels); GiB, TiB, MiB binary.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (256G, 32GiB)", s)
	}
	mult := map[string]float64{
		"": 1, "B": 1,
		"K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
		"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40,
	}[strings.ToUpper(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (use G, GB, GiB, T, TB, TiB)", s, unit)
	}
	if v*mult >= 1<<62 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v * mult), nil
}

// readAttr reads a sysfs attribute, trimmed; "" when missing.
func readAttr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// entry resolves the sysfs folder of the block device called name.
func (s System) entry(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return "", fmt.Errorf("bad block device name %q", name)
	}
	dir, err := filepath.EvalSymlinks(s.sys("class", "block", name))
	if err != nil {
		return "", fmt.Errorf("no block device %s in sysfs: %w", name, err)
	}
	return dir, nil
}

// nameOf returns the kernel name of block device major:minor.
func (s System) nameOf(dev string) (string, error) {
	dir, err := filepath.EvalSymlinks(s.sys("dev", "block", dev))
	if err != nil {
		return "", fmt.Errorf("no block device %s in sysfs: %w", dev, err)
	}
	return filepath.Base(dir), nil
}

// disksOf returns the whole disks under block device name: the disk of a
// partition, the disks under a device-mapper or RAID device's slaves.
func (s System) disksOf(name string, depth int) []string {
	dir, err := s.entry(name)
	if err != nil || depth > 8 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		return []string{filepath.Base(filepath.Dir(dir))}
	}
	slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
	if len(slaves) == 0 {
		return []string{name}
	}
	var out []string
	for _, sl := range slaves {
		for _, d := range s.disksOf(sl.Name(), depth+1) {
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}

// mount is one line of mountinfo.
type mount struct {
	dev, point, source string
}

// mounts parses the mountinfo file.
func (s System) mounts() ([]mount, error) {
	path := s.MountInfo
	if path == "" {
		path = "/proc/self/mountinfo"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m, ok := parseMountInfo(sc.Text()); ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return out, nil
}

// parseMountInfo decodes one mountinfo line (proc(5)):
// id parent major:minor root point options [optional...] - fstype source superopts
func parseMountInfo(line string) (mount, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return mount{}, false
	}
	f := strings.Fields(pre)
	g := strings.Fields(post)
	if len(f) < 5 || len(g) < 2 || !strings.Contains(f[2], ":") {
		return mount{}, false
	}
	return mount{dev: f[2], point: unescapeOctal(f[4]), source: unescapeOctal(g[1])}, true
}

var octalRE = regexp.MustCompile(`\\[0-3][0-7][0-7]`)

// unescapeOctal undoes the \040-style escapes of mountinfo and /proc/swaps.
func unescapeOctal(s string) string {
	return octalRE.ReplaceAllStringFunc(s, func(e string) string {
		v, _ := strconv.ParseUint(e[1:], 8, 8)
		return string(rune(byte(v)))
	})
}

// mountDisks returns the names of the block device behind a mount, and the
// disks under it. Anonymous devices (major 0: tmpfs, overlay, btrfs
// subvolumes) fall back to a /dev source path.
func (s System) mountDevice(m mount) string {
	if !strings.HasPrefix(m.dev, "0:") {
		if n, err := s.nameOf(m.dev); err == nil {
			return n
		}
	}
	if strings.HasPrefix(m.source, "/dev/") {
		src := m.source
		if r, err := filepath.EvalSymlinks(src); err == nil {
			src = r
		}
		return filepath.Base(src)
	}
	return ""
}

// swaps returns the block devices holding active swap and a label for each.
func (s System) swaps() (map[string]string, error) {
	path := s.Swaps
	if path == "" {
		path = "/proc/swaps"
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading swaps: %w", err)
	}
	out := make(map[string]string)
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 2 {
			continue
		}
		name := unescapeOctal(f[0])
		if f[1] == "partition" {
			dev := name
			if r, err := filepath.EvalSymlinks(dev); err == nil {
				dev = r
			}
			out[filepath.Base(dev)] = "swap " + name
			continue
		}
		// A swap file: the disk of the filesystem holding it.
		if dev, err := fileDevice(name); err == nil {
			if n, err := s.nameOf(dev); err == nil {
				out[n] = "swap file " + name
			}
		}
	}
	return out, nil
}

// Examine describes block device name (a disk or a partition).
func (s System) Examine(name string) (*Device, error) {
	dir, err := s.entry(name)
	if err != nil {
		return nil, err
	}
	d := &Device{Name: name, Dev: readAttr(filepath.Join(dir, "dev"))}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		d.Partition = true
		d.Parent = filepath.Base(filepath.Dir(dir))
	}
	sectors, _ := strconv.ParseInt(readAttr(filepath.Join(dir, "size")), 10, 64)
	d.Size = sectors * 512 // sysfs counts 512-byte units whatever the sector size
	d.ReadOnly = readAttr(filepath.Join(dir, "ro")) == "1"
	d.Model = readAttr(filepath.Join(dir, "device", "model"))
	if d.Model == "" {
		d.Model = readAttr(filepath.Join(dir, "device", "name")) // mmc cards
	}
	d.Vendor = readAttr(filepath.Join(dir, "device", "vendor"))
	d.Virtual = strings.Contains(filepath.ToSlash(dir), "/devices/virtual/")
	if d.Partition {
		return d, nil
	}
	s.classify(d, dir)
	if err := s.usage(d, dir); err != nil {
		return nil, err
	}
	return d, nil
}

// classify applies the removable rule:
//   - removable=1 in sysfs (USB card readers, USB sticks);
//   - an MMC-bus disk (mmcblkN) whose card reports type "SD": SD cards in
//     built-in readers show removable=0 although the card comes out; type
//     "MMC" is soldered eMMC storage and is not removable;
//   - a loop device backed by a regular file: writing it writes that file.
//
// Everything else is fixed.
func (s System) classify(d *Device, dir string) {
	switch typ := readAttr(filepath.Join(dir, "device", "type")); {
	case readAttr(filepath.Join(dir, "removable")) == "1":
		d.Removable, d.RemovableWhy = true, "removable=1"
	case strings.HasPrefix(d.Name, "mmcblk") && typ == "SD":
		d.Removable, d.RemovableWhy = true, "SD card (MMC bus, card type SD)"
	case strings.HasPrefix(d.Name, "mmcblk"):
		d.RemovableWhy = fmt.Sprintf("MMC card type %q (eMMC is built in)", typ)
	case strings.HasPrefix(d.Name, "loop"):
		back := readAttr(filepath.Join(dir, "loop", "backing_file"))
		if st, err := os.Stat(back); back != "" && err == nil && st.Mode().IsRegular() {
			d.Removable, d.RemovableWhy = true, "loop device over the file "+back
		} else {
			d.RemovableWhy = "loop device not backed by a regular file"
		}
	default:
		d.RemovableWhy = "removable=0"
	}
}

// usage fills in partitions, holders, mounts and the running system's use
// of disk d (sysfs folder dir).
func (s System) usage(d *Device, dir string) error {
	ents, _ := os.ReadDir(dir)
	names := []string{d.Name}
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "partition")); err != nil {
			continue
		}
		sectors, _ := strconv.ParseInt(readAttr(filepath.Join(dir, e.Name(), "size")), 10, 64)
		d.Partitions = append(d.Partitions, Partition{Name: e.Name(), Size: sectors * 512})
		names = append(names, e.Name())
	}
	slices.SortFunc(d.Partitions, func(a, b Partition) int { return naturalCompare(a.Name, b.Name) })
	for _, n := range names {
		hdir := filepath.Join(dir, "holders")
		if n != d.Name {
			hdir = filepath.Join(dir, n, "holders")
		}
		hs, _ := os.ReadDir(hdir)
		for _, h := range hs {
			d.Holders = append(d.Holders, fmt.Sprintf("%s (on %s)", h.Name(), n))
		}
	}
	ms, err := s.mounts()
	if err != nil {
		return err
	}
	for _, m := range ms {
		dev := s.mountDevice(m)
		if dev == "" || !slices.Contains(s.disksOf(dev, 0), d.Name) {
			continue
		}
		d.Mounts = append(d.Mounts, fmt.Sprintf("/dev/%s on %s", dev, m.point))
		for i := range d.Partitions {
			if d.Partitions[i].Name == dev {
				d.Partitions[i].Mounts = append(d.Partitions[i].Mounts, m.point)
			}
		}
		if m.point == "/" {
			d.System = append(d.System, "the root filesystem / is on it")
		}
	}
	sw, err := s.swaps()
	if err != nil {
		return err
	}
	for dev, label := range sw {
		if slices.Contains(s.disksOf(dev, 0), d.Name) {
			d.System = append(d.System, label)
		}
	}
	slices.Sort(d.System)
	return nil
}

// naturalCompare orders sdb2 before sdb10.
func naturalCompare(a, b string) int {
	ta, na := splitNum(a)
	tb, nb := splitNum(b)
	if ta != tb {
		return strings.Compare(ta, tb)
	}
	return na - nb
}

func splitNum(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, _ := strconv.Atoi(s[i:])
	return s[:i], n
}

// List describes every disk that could be a target: all disks with
// hardware behind them, and loop devices that are in use. Check says which
// of them piimage would write.
func (s System) List() ([]*Device, error) {
	ents, err := os.ReadDir(s.sys("block"))
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	var out []*Device
	for _, e := range ents {
		d, err := s.Examine(e.Name())
		if err != nil {
			return nil, err
		}
		if d.Size == 0 || (d.Virtual && !(strings.HasPrefix(d.Name, "loop") && d.Removable)) {
			continue
		}
		d.Path = "/dev/" + d.Name
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *Device) int { return naturalCompare(a.Name, b.Name) })
	return out, nil
}
