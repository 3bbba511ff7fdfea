package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fsTools skips the test unless it runs as root with the e2fsprogs tools
// and losetup, and returns the host's e2fsck.
func fsTools(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and mounts")
	}
	for _, tool := range []string{"mkfs.ext4", "debugfs", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	fsck, err := exec.LookPath("e2fsck")
	if err != nil {
		t.Skip("needs e2fsck")
	}
	fs, _ := os.ReadFile("/proc/filesystems")
	if !strings.Contains(string(fs), "\text4\n") {
		t.Skip("this kernel has no ext4")
	}
	return fsck
}

// tool runs a command with a time bound and returns its combined output.
func tool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// newExt4Loop makes a 16 MiB ext4 (errors=continue: a damaged file system
// never panics this machine) on a loop device that the test detaches, and
// returns the device.
func newExt4Loop(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "data.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := tool(t, "mkfs.ext4", "-q", "-F", "-e", "continue", "-L", "data", img); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := tool(t, "losetup", "--find", "--show", img)
	if err != nil {
		t.Skipf("cannot attach a loop device: %v: %s", err, out)
	}
	dev := strings.TrimSpace(out)
	t.Cleanup(func() {
		if out, err := tool(t, "losetup", "-d", dev); err != nil {
			t.Errorf("detaching %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// mounter mounts for real and unmounts what it mounted when the test
// ends.
type mounter struct {
	t       *testing.T
	mu      sync.Mutex
	flags   []uintptr // of each successful mount
	refused int       // mounts that failed
}

func (m *mounter) mount(dev, target string, flags uintptr) error {
	if err := unix.Mount(dev, target, "ext4", flags, ""); err != nil {
		m.mu.Lock()
		m.refused++
		m.mu.Unlock()
		return &os.PathError{Op: "mount", Path: target, Err: err}
	}
	m.mu.Lock()
	m.flags = append(m.flags, flags)
	m.mu.Unlock()
	m.t.Cleanup(func() { unmount(m.t, target) })
	return nil
}

// unmount unmounts target if it is still mounted.
func unmount(t *testing.T, target string) {
	if err := unix.Unmount(target, 0); err != nil && err != unix.EINVAL {
		t.Errorf("unmounting %s: %v", target, err)
		unix.Unmount(target, unix.MNT_DETACH)
	}
}

// putFiles mounts dev, writes files (name -> content) with fsync and
// unmounts it cleanly.
func putFiles(t *testing.T, dev string, files map[string]string) {
	t.Helper()
	mnt := t.TempDir()
	if err := unix.Mount(dev, mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mounting %s: %v", dev, err)
	}
	for name, content := range files {
		writeSynced(t, filepath.Join(mnt, name), content)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatalf("unmounting %s: %v", mnt, err)
	}
}

func writeSynced(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// debugfsW runs `debugfs -w -R req` on dev for each request.
func debugfsW(t *testing.T, dev string, reqs ...string) {
	t.Helper()
	for _, req := range reqs {
		if out, err := tool(t, "debugfs", "-w", "-R", req, dev); err != nil {
			t.Fatalf("debugfs -w -R %q: %v\n%s", req, err, out)
		}
	}
}

// checkClean asserts that `e2fsck -fn` finds dev clean.
func checkClean(t *testing.T, fsck, dev string) {
	t.Helper()
	if out, err := tool(t, fsck, "-fn", dev); err != nil {
		t.Errorf("e2fsck -fn %s after the check: %v\n%s", dev, err, out)
	}
}

// TestCheckAndMount damages ext4 file systems on loop devices the way
// power cuts and bad cards do, then runs the init's data partition check
// with this machine's e2fsck: it decides from the superblock, repairs,
// mounts, and the files written before are still there; afterwards
// e2fsck -fn finds the file system clean.
func TestCheckAndMount(t *testing.T) {
	fsck := fsTools(t)
	const keep = "written before the damage\n"
	tests := []struct {
		name string
		// damage breaks the unmounted file system on dev; mnt is a
		// folder to mount it at if it needs to.
		damage func(t *testing.T, dev, mnt string)
		action fsckAction
		// args of each e2fsck run, without the device; nil: none ran.
		runs       [][]string
		mountFails bool   // the first mount is refused
		keepAt     string // where keep.txt is after the repair ("" = keep.txt)
	}{
		{
			name:   "clean",
			damage: func(*testing.T, string, string) {},
			action: fsckNone,
		},
		{
			// The kernel found errors while running, recorded them and
			// went on (errors=continue); the link count of a file is
			// wrong and so is the free blocks count.
			name: "errors recorded",
			damage: func(t *testing.T, dev, _ string) {
				debugfsW(t, dev, "sif other.txt links_count 7", "ssv free_blocks_count 17",
					"ssv state 3", "ssv error_count 2", "ssv first_error_func ext4_lookup", "ssv first_error_line 1859")
			},
			action: fsckPreen,
			runs:   [][]string{{"-f", "-p"}},
		},
		{
			// Two files claim the same block: e2fsck -p refuses
			// ("UNEXPECTED INCONSISTENCY"), -y clones the block.
			name: "preen is not enough",
			damage: func(t *testing.T, dev, _ string) {
				out, err := tool(t, "debugfs", "-R", "bmap keep.txt 0", dev)
				if err != nil {
					t.Fatalf("debugfs bmap: %v\n%s", err, out)
				}
				block := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
				// In an inode with an inline extent tree, block[5] is
				// the first extent's start block.
				debugfsW(t, dev, "sif other.txt block[5] "+block, "ssv state 3")
			},
			action: fsckPreen,
			runs:   [][]string{{"-f", "-p"}, {"-f", "-y"}},
		},
		{
			// The root directory's inode is wiped and nothing is
			// recorded: the superblock looks clean, the kernel refuses
			// to mount, e2fsck -y rebuilds the root and reconnects the
			// files in lost+found.
			name:       "mount refused",
			damage:     func(t *testing.T, dev, _ string) { debugfsW(t, dev, "clri <2>") },
			action:     fsckNone,
			runs:       [][]string{{"-f", "-y"}},
			mountFails: true,
			keepAt:     "lost+found",
		},
		{
			// The primary superblock is gone; e2fsck finds a backup.
			name: "superblock zeroed",
			damage: func(t *testing.T, dev, _ string) {
				f, err := os.OpenFile(dev, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.WriteAt(make([]byte, ext4SuperSize), ext4SuperOffset); err != nil {
					t.Fatal(err)
				}
				f.Sync()
			},
			action: fsckRepair,
			runs:   [][]string{{"-f", "-y"}},
		},
		{
			// A power cut: a file written and fsynced, then the file
			// system shut down without flushing the journal
			// (FS_IOC_SHUTDOWN, EXT4_GOING_FLAGS_NOLOGFLUSH), as when
			// power goes. The kernel replays the journal on mount; no
			// e2fsck is needed.
			name: "power cut",
			damage: func(t *testing.T, dev, mnt string) {
				if err := unix.Mount(dev, mnt, "ext4", 0, ""); err != nil {
					t.Fatal(err)
				}
				writeSynced(t, filepath.Join(mnt, "late.txt"), "fsynced before the power cut\n")
				d, err := os.Open(mnt)
				if err != nil {
					t.Fatal(err)
				}
				flag := uint32(2) // EXT4_GOING_FLAGS_NOLOGFLUSH
				err = unix.IoctlSetPointerInt(int(d.Fd()), fsIocShutdown, int(flag))
				d.Close()
				if err != nil {
					unix.Unmount(mnt, 0)
					t.Skipf("FS_IOC_SHUTDOWN: %v", err)
				}
				if err := unix.Unmount(mnt, 0); err != nil {
					t.Fatal(err)
				}
			},
			action: fsckReplay,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev := newExt4Loop(t)
			putFiles(t, dev, map[string]string{"keep.txt": keep, "other.txt": "another file\n"})
			tc.damage(t, dev, t.TempDir())

			var said []string
			var mu sync.Mutex
			m := &mounter{t: t}
			c := dataChecker{Fsck: fsck, Mount: m.mount, Say: func(f string, a ...any) {
				mu.Lock()
				said = append(said, fmt.Sprintf(f, a...))
				mu.Unlock()
			}}
			target := t.TempDir()
			dc, err := c.checkAndMount(dev, target, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC)
			console := strings.Join(said, "\n")
			if err != nil {
				t.Fatalf("checkAndMount: %v\n%s", err, console)
			}
			if dc.Verdict.Action != tc.action {
				t.Errorf("verdict %v (%s), want %v", dc.Verdict.Action, dc.Verdict.Reason, tc.action)
			}
			var runs [][]string
			for _, r := range dc.Runs {
				runs = append(runs, r.Args[:len(r.Args)-1])
			}
			if fmt.Sprint(runs) != fmt.Sprint(tc.runs) {
				t.Errorf("e2fsck runs %v, want %v\n%s", runs, tc.runs, console)
			}
			if n := len(dc.Runs); n > 0 && !dc.Runs[n-1].Exit.consistent() {
				t.Errorf("the last e2fsck run: %v\n%s", dc.Runs[n-1], console)
			}
			if !dc.Mounted || dc.ReadOnly || len(m.flags) != 1 || m.flags[0]&unix.MS_RDONLY != 0 {
				t.Errorf("mounted %v read-only %v, mount flags %v", dc.Mounted, dc.ReadOnly, m.flags)
			}
			if (m.refused == 1) != tc.mountFails || (dc.MountErr != nil) != tc.mountFails {
				t.Errorf("%d refused mounts (first mount error %v); want the first refused: %v\n%s", m.refused, dc.MountErr, tc.mountFails, console)
			}
			if tc.action != fsckNone || tc.runs != nil {
				if !strings.Contains(console, "data partition "+dev+": ") {
					t.Errorf("the console does not report the check:\n%s", console)
				}
			} else if console != "" {
				t.Errorf("a clean partition made the console say:\n%s", console)
			}

			if tc.keepAt == "" {
				if b, err := os.ReadFile(filepath.Join(target, "keep.txt")); err != nil || string(b) != keep {
					t.Errorf("keep.txt after the check: %q, %v", b, err)
				}
			} else if !dirHolds(t, filepath.Join(target, tc.keepAt), keep) {
				t.Errorf("no file in %s holds keep.txt's content", tc.keepAt)
			}
			if tc.name == "power cut" {
				if b, err := os.ReadFile(filepath.Join(target, "late.txt")); err != nil || string(b) != "fsynced before the power cut\n" {
					t.Errorf("the file fsynced before the power cut: %q, %v", b, err)
				}
			}
			if err := unix.Unmount(target, 0); err != nil {
				t.Fatal(err)
			}
			checkClean(t, fsck, dev)
			t.Logf("console:\n%s", console)
		})
	}
}

// fsIocShutdown is FS_IOC_SHUTDOWN, _IOR('X', 125, __u32).
const fsIocShutdown = 0x8004587d

// dirHolds reports whether a regular file in dir has content.
func dirHolds(t *testing.T, dir, content string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("reading %s: %v", dir, err)
		return false
	}
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && string(b) == content {
			return true
		}
	}
	return false
}

// TestCheckAndMountWithoutFsck: an image without e2fsck says so and
// mounts the partition as before; one whose e2fsck cannot run reports an
// operational error and mounts too.
func TestCheckAndMountWithoutFsck(t *testing.T) {
	fsTools(t)
	for _, tc := range []struct {
		name, fsck, want string
	}{
		{"absent", "/nonexistent/e2fsck", "no e2fsck in this image (/nonexistent/e2fsck)"},
		{"not a program", "", "operational error (exit 8)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := newExt4Loop(t)
			putFiles(t, dev, map[string]string{"keep.txt": "x"})
			debugfsW(t, dev, "ssv state 3")
			fsck := tc.fsck
			if fsck == "" {
				fsck = filepath.Join(t.TempDir(), "e2fsck")
				writeFile(t, fsck, "not an executable")
			}
			var said []string
			m := &mounter{t: t}
			c := dataChecker{Fsck: fsck, Mount: m.mount, Say: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }}
			target := t.TempDir()
			dc, err := c.checkAndMount(dev, target, 0)
			console := strings.Join(said, "\n")
			if err != nil || !dc.Mounted {
				t.Fatalf("checkAndMount: %v\n%s", err, console)
			}
			if !strings.Contains(console, tc.want) {
				t.Errorf("console lacks %q:\n%s", tc.want, console)
			}
			if _, err := os.Stat(filepath.Join(target, "keep.txt")); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCheckAndMountGivesUp: a partition that is no file system at all
// stays unmounted, and the error and the console say what was tried.
func TestCheckAndMountGivesUp(t *testing.T) {
	fsck := fsTools(t)
	dev := newExt4Loop(t)
	// Zero the first 8 MiB: the primary and the first backup superblocks
	// and the group descriptors.
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for off := int64(0); off < 16<<20; off += 1 << 20 {
		f.WriteAt(zero, off)
	}
	f.Sync()
	f.Close()
	var said []string
	m := &mounter{t: t}
	c := dataChecker{Fsck: fsck, Mount: m.mount, Say: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }}
	dc, err := c.checkAndMount(dev, t.TempDir(), 0)
	console := strings.Join(said, "\n")
	if err == nil || dc.Mounted {
		t.Fatalf("checkAndMount of zeros = %v, mounted %v\n%s", err, dc.Mounted, console)
	}
	if !strings.Contains(err.Error(), "runs without its data partition") || len(dc.Runs) != 1 || dc.Runs[0].Exit.consistent() {
		t.Errorf("error %v, runs %v", err, dc.Runs)
	}
	if !strings.Contains(console, "NOT mounted") {
		t.Errorf("console:\n%s", console)
	}
}
