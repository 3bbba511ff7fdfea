package flash

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeSys builds a sysfs tree, a mountinfo and a swaps file in a temp
// folder, shaped like the kernel's.
type fakeSys struct {
	t                  *testing.T
	root               string
	mountinfo, swapTbl []string
}

func newFakeSys(t *testing.T) *fakeSys {
	f := &fakeSys{t: t, root: t.TempDir()}
	for _, d := range []string{"sys/block", "sys/class/block", "sys/dev/block", "sys/devices/virtual/block"} {
		f.mkdir(d)
	}
	// The running system: / on vda1, as on this kind of VM.
	f.disk(disk{name: "vda", dev: "254:0", bus: "pci0000:00/virtio1", size: 256e9, removable: "0",
		parts: []part{{name: "vda1", dev: "254:1", size: 250e9}, {name: "vda2", dev: "254:2", size: 6e9}}})
	f.mount("254:1", "/", "/dev/vda1")
	f.swap("/dev/vda2", "partition")
	return f
}

func (f *fakeSys) mkdir(p string) {
	if err := os.MkdirAll(filepath.Join(f.root, p), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSys) file(p, content string) {
	f.mkdir(filepath.Dir(p))
	if err := os.WriteFile(filepath.Join(f.root, p), []byte(content+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSys) link(p, target string) {
	if err := os.Symlink(target, filepath.Join(f.root, p)); err != nil {
		f.t.Fatal(err)
	}
}

type disk struct {
	name, dev, bus        string // bus "" means virtual
	size                  int64
	removable, typ        string
	model, vendor         string
	ro                    bool
	parts                 []part
	holders, slaves       []string
	backing               string // loop devices
	writeZeroesOffloading bool
}

type part struct {
	name, dev string
	size      int64
	holders   []string
}

// disk adds a disk with its partitions.
func (f *fakeSys) disk(d disk) {
	bus := d.bus
	if bus == "" {
		bus = "virtual"
	}
	dir := "sys/devices/" + bus + "/block/" + d.name
	f.file(dir+"/dev", d.dev)
	f.file(dir+"/size", strconv.FormatInt(d.size/512, 10))
	f.file(dir+"/removable", d.removable)
	f.file(dir+"/ro", map[bool]string{true: "1", false: "0"}[d.ro])
	if d.bus != "" {
		f.file(dir+"/device/model", d.model)
		f.file(dir+"/device/vendor", d.vendor)
		if d.typ != "" {
			f.file(dir+"/device/type", d.typ)
		}
	}
	if d.backing != "" {
		f.file(dir+"/loop/backing_file", d.backing)
	}
	f.file(dir+"/queue/write_zeroes_max_bytes", map[bool]string{true: "33550336", false: "0"}[d.writeZeroesOffloading])
	f.mkdir(dir + "/holders")
	f.mkdir(dir + "/slaves")
	for _, h := range d.holders {
		f.mkdir(dir + "/holders/" + h)
	}
	for _, s := range d.slaves {
		f.mkdir(dir + "/slaves/" + s)
	}
	up := "../../devices/" + bus + "/block/" + d.name
	f.link("sys/block/"+d.name, "../devices/"+bus+"/block/"+d.name)
	f.link("sys/class/block/"+d.name, up)
	f.link("sys/dev/block/"+d.dev, up)
	for _, p := range d.parts {
		pd := dir + "/" + p.name
		f.file(pd+"/partition", strconv.Itoa(len(p.name)))
		f.file(pd+"/dev", p.dev)
		f.file(pd+"/size", strconv.FormatInt(p.size/512, 10))
		f.mkdir(pd + "/holders")
		for _, h := range p.holders {
			f.mkdir(pd + "/holders/" + h)
		}
		f.link("sys/class/block/"+p.name, up+"/"+p.name)
		f.link("sys/dev/block/"+p.dev, up+"/"+p.name)
	}
}

func (f *fakeSys) mount(dev, point, source string) {
	id := len(f.mountinfo) + 20
	fstype := "ext4"
	if strings.HasPrefix(dev, "0:") {
		fstype = "btrfs"
	}
	f.mountinfo = append(f.mountinfo, strconv.Itoa(id)+" 1 "+dev+" / "+point+" rw,relatime shared:1 - "+fstype+" "+source+" rw")
}

func (f *fakeSys) swap(name, kind string) {
	f.swapTbl = append(f.swapTbl, name+"\t"+kind+"\t1000\t0\t-2")
}

func (f *fakeSys) system() System {
	mi := filepath.Join(f.root, "mountinfo")
	sw := filepath.Join(f.root, "swaps")
	os.WriteFile(mi, []byte(strings.Join(f.mountinfo, "\n")+"\n"), 0o644)
	os.WriteFile(sw, []byte("Filename\tType\tSize\tUsed\tPriority\n"+strings.Join(f.swapTbl, "\n")+"\n"), 0o644)
	return System{SysRoot: filepath.Join(f.root, "sys"), MountInfo: mi, Swaps: sw}
}

// usbCard is a 32 GB card in a USB reader.
func usbCard(name, dev string) disk {
	maj, _, _ := strings.Cut(dev, ":")
	return disk{name: name, dev: dev, bus: "pci0000:00/usb1/1-1/host0/target0:0:0/0:0:0:0", size: 31_914_983_424,
		removable: "1", model: "SD/MMC Reader", vendor: "Generic",
		parts: []part{{name: name + "1", dev: maj + ":1", size: 256 * mib}, {name: name + "2", dev: maj + ":2", size: 2 << 30}}}
}

// TestCheck runs the refusal logic over every case on a fake system.
func TestCheck(t *testing.T) {
	backing := filepath.Join(t.TempDir(), "backing.img")
	os.WriteFile(backing, nil, 0o644)
	tests := []struct {
		name   string
		setup  func(f *fakeSys)
		dev    string
		policy Policy
		want   []string // substrings of the refusal; none means accepted
	}{
		{"usb card", func(f *fakeSys) { f.disk(usbCard("sdb", "8:16")) }, "sdb", Policy{ImageSize: 1800 * mib}, nil},
		{"partition", func(f *fakeSys) { f.disk(usbCard("sdb", "8:16")) }, "sdb1", Policy{},
			[]string{"sdb1 is a partition of sdb", "--device /dev/sdb"}},
		{"fixed disk", func(f *fakeSys) {
			f.disk(disk{name: "sda", dev: "8:0", bus: "pci0000:00/ata1", size: 500e9, removable: "0", model: "Samsung SSD"})
		}, "sda", Policy{}, []string{"not removable (removable=0)", "larger than the 256.0 GB limit", "this disk is not one"}},
		{"system disk", nil, "vda", Policy{MaxSize: 1e12},
			[]string{"holds the running system (swap /dev/vda2; the root filesystem / is on it)", "mounted (/dev/vda1 on /)"}},
		{"sd card in a built-in reader", func(f *fakeSys) {
			f.disk(disk{name: "mmcblk0", dev: "179:0", bus: "platform/mmc0/mmc0:aaaa", size: 15_931_539_456, removable: "0", typ: "SD"})
		}, "mmcblk0", Policy{ImageSize: 1800 * mib}, nil},
		{"emmc", func(f *fakeSys) {
			f.disk(disk{name: "mmcblk1", dev: "179:8", bus: "platform/mmc1/mmc1:0001", size: 32e9, removable: "0", typ: "MMC"})
		}, "mmcblk1", Policy{}, []string{`MMC card type "MMC" (eMMC is built in)`}},
		{"too large", func(f *fakeSys) {
			d := usbCard("sdc", "8:32")
			d.size = 512e9
			f.disk(d)
		}, "sdc", Policy{}, []string{"512.0 GB, larger than the 256.0 GB limit"}},
		{"too large, limit raised", func(f *fakeSys) {
			d := usbCard("sdc", "8:32")
			d.size = 512e9
			f.disk(d)
		}, "sdc", Policy{MaxSize: 600e9}, nil},
		{"smaller than the image", func(f *fakeSys) {
			d := usbCard("sdb", "8:16")
			d.size = 1e9
			f.disk(d)
		}, "sdb", Policy{ImageSize: 1800 * mib}, []string{"1.0 GB, smaller than the 1.9 GB image", "use a larger card"}},
		{"write-protected", func(f *fakeSys) {
			d := usbCard("sdb", "8:16")
			d.ro = true
			f.disk(d)
		}, "sdb", Policy{}, []string{"write-protected", "lock switch"}},
		{"mounted partition", func(f *fakeSys) {
			f.disk(usbCard("sdb", "8:16"))
			f.mount("8:2", "/media/me/rootfs", "/dev/sdb2")
		}, "sdb", Policy{}, []string{"mounted (/dev/sdb2 on /media/me/rootfs)", "umount"}},
		{"mounted with a space in the path", func(f *fakeSys) {
			f.disk(usbCard("sdb", "8:16"))
			f.mount("8:1", `/media/me/boot\040disk`, "/dev/sdb1")
		}, "sdb", Policy{}, []string{"/dev/sdb1 on /media/me/boot disk"}},
		{"mounted by source (anonymous device)", func(f *fakeSys) {
			f.disk(usbCard("sdb", "8:16"))
			f.mount("0:45", "/mnt/btrfs", "/dev/sdb2")
		}, "sdb", Policy{}, []string{"mounted (/dev/sdb2 on /mnt/btrfs)"}},
		{"held by device mapper", func(f *fakeSys) {
			d := usbCard("sdb", "8:16")
			d.parts[1].holders = []string{"dm-0"}
			f.disk(d)
			f.disk(disk{name: "dm-0", dev: "253:0", size: 2 << 30, removable: "0", slaves: []string{"sdb2"}})
		}, "sdb", Policy{}, []string{"in use by dm-0 (on sdb2)", "dmsetup remove"}},
		{"root on dm over the card", func(f *fakeSys) {
			d := usbCard("sdb", "8:16")
			d.parts[1].holders = []string{"dm-0"}
			f.disk(d)
			f.disk(disk{name: "dm-0", dev: "253:0", size: 2 << 30, removable: "0", slaves: []string{"sdb2"}})
			f.mountinfo = nil
			f.mount("253:0", "/", "/dev/mapper/root")
		}, "sdb", Policy{}, []string{"the root filesystem / is on it", "mounted (/dev/dm-0 on /)"}},
		{"swap on the card", func(f *fakeSys) {
			f.disk(usbCard("sdb", "8:16"))
			f.swap("/dev/sdb2", "partition")
		}, "sdb", Policy{}, []string{"running system (swap /dev/sdb2)"}},
		{"whole-disk holder", func(f *fakeSys) {
			d := usbCard("sdb", "8:16")
			d.holders = []string{"md127"}
			f.disk(d)
		}, "sdb", Policy{}, []string{"in use by md127 (on sdb)"}},
		{"loop device over a file", func(f *fakeSys) {
			f.disk(disk{name: "loop3", dev: "7:3", size: 2 << 30, removable: "0", backing: backing})
		}, "loop3", Policy{ImageSize: 1800 * mib}, nil},
		{"loop device over nothing", func(f *fakeSys) {
			f.disk(disk{name: "loop4", dev: "7:4", size: 2 << 30, removable: "0", backing: "/dev/sda"})
		}, "loop4", Policy{}, []string{"loop device not backed by a regular file"}},
		{"zram", func(f *fakeSys) {
			f.disk(disk{name: "zram0", dev: "252:0", size: 4 << 30, removable: "0"})
		}, "zram0", Policy{}, []string{"not removable"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSys(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			d, err := f.system().Examine(tc.dev)
			if err != nil {
				t.Fatal(err)
			}
			err = Check(d, tc.policy)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("accepted (%v); want a refusal saying %q", err, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal does not say %q:\n%v", w, err)
				}
			}
			for _, p := range re.Problems {
				if p.Why == "" || p.Do == "" {
					t.Errorf("problem without reason or advice: %+v", p)
				}
			}
		})
	}
}

// TestExamine checks what Examine reads: size, model, partitions, mounts.
func TestExamine(t *testing.T) {
	f := newFakeSys(t)
	c := usbCard("sdb", "8:16")
	c.parts = append(c.parts, part{name: "sdb10", dev: "8:10", size: mib})
	f.disk(c)
	f.mount("8:1", "/media/boot", "/dev/sdb1")
	d, err := f.system().Examine("sdb")
	if err != nil {
		t.Fatal(err)
	}
	if d.Size != 31_914_983_424 || d.Model != "SD/MMC Reader" || d.Vendor != "Generic" || d.Dev != "8:16" || !d.Removable {
		t.Errorf("%+v", d)
	}
	var names []string
	for _, p := range d.Partitions {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "sdb1,sdb2,sdb10" {
		t.Errorf("partitions %v", names)
	}
	if len(d.Partitions[0].Mounts) != 1 || d.Partitions[0].Mounts[0] != "/media/boot" {
		t.Errorf("partition mounts %+v", d.Partitions[0])
	}
	if got := d.Describe(); got != "/dev/sdb (Generic SD/MMC Reader, 31.9 GB)" {
		t.Errorf("Describe: %q", got)
	}
	if _, err := f.system().Examine("nope"); err == nil {
		t.Error("missing device examined")
	}
	if _, err := f.system().Examine("../sdb"); err == nil {
		t.Error("path in name accepted")
	}
}

// TestList checks that List shows disks and in-use loop devices only.
func TestList(t *testing.T) {
	backing := filepath.Join(t.TempDir(), "b.img")
	os.WriteFile(backing, nil, 0o644)
	f := newFakeSys(t)
	f.disk(usbCard("sdb", "8:16"))
	f.disk(disk{name: "mmcblk0", dev: "179:0", bus: "platform/mmc0/mmc0:aaaa", size: 16e9, removable: "0", typ: "SD"})
	f.disk(disk{name: "loop0", dev: "7:0", size: 0, removable: "0"})
	f.disk(disk{name: "loop1", dev: "7:1", size: 2e9, removable: "0", backing: backing})
	f.disk(disk{name: "zram0", dev: "252:0", size: 4e9, removable: "0"})
	ds, err := f.system().List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Name)
	}
	if strings.Join(got, ",") != "loop1,mmcblk0,sdb,vda" {
		t.Errorf("List: %v", got)
	}
}

func TestParseMountInfo(t *testing.T) {
	tests := []struct {
		line string
		want mount
		ok   bool
	}{
		{"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw", mount{"254:0", "/", "/dev/vda"}, true},
		{`36 35 8:17 / /media/a\040b rw shared:2 master:1 - vfat /dev/sdb1 rw`, mount{"8:17", "/media/a b", "/dev/sdb1"}, true},
		{"garbage", mount{}, false},
		{"1 2 3 4 5 - x", mount{}, false},
	}
	for _, tc := range tests {
		got, ok := parseMountInfo(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"256G", 256e9, false}, {"256GB", 256e9, false}, {"32GiB", 32 << 30, false}, {"1T", 1e12, false},
		{"1000", 1000, false}, {"1.5G", 1.5e9, false}, {" 64 gb ", 64e9, false},
		{"", 0, true}, {"G", 0, true}, {"12X", 0, true}, {"-1G", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func TestRefuseForeignPath(t *testing.T) {
	for _, p := range []string{"/dev/disk2", "/dev/rdisk4", "/dev/disk2s1"} {
		if err := RefuseForeignPath(p); err == nil || !strings.Contains(err.Error(), "macOS") {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"/dev/sdb", "/dev/disk/by-id/usb-x", "/dev/mmcblk0", "disk2", "/dev/diskette"} {
		if err := RefuseForeignPath(p); err != nil {
			t.Errorf("%s refused: %v", p, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"256G", "32GiB", "1.5T", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n < 0 {
			t.Errorf("ParseSize(%q) = %d", s, n)
		}
	})
}
