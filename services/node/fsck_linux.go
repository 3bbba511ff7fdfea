package node

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
)

// fsckPath is the static e2fsck in the root (rootfs.FsckPath).
const fsckPath = "/sbin/e2fsck"

// fsckMaxLines bounds the e2fsck output lines said on the console per
// run: a badly damaged file system makes thousands.
const fsckMaxLines = 60

// dataChecker checks an ext4 partition with e2fsck when its superblock
// asks for it, then mounts it; when the mount fails it repairs with
// e2fsck -y and tries once more.
type dataChecker struct {
	// Fsck is e2fsck's path; when it is empty or missing the partition
	// is mounted unchecked, as before the image had one.
	Fsck string
	// Say reports on the console.
	Say func(format string, args ...any)
	// Mount mounts dev at target with flags.
	Mount func(dev, target string, flags uintptr) error
}

// checkAndMount checks dev (an unmounted ext4 partition) as its superblock
// asks and mounts it at target. When e2fsck leaves errors uncorrected it
// mounts read-only. The returned check says what happened, also on error.
func (c dataChecker) checkAndMount(dev, target string, flags uintptr) (*dataCheck, error) {
	dc := &dataCheck{Device: dev}
	sb, err := readSuperblock(dev)
	if err != nil {
		dc.Verdict = fsckVerdict{fsckRepair, err.Error()}
	} else {
		dc.Verdict = decideFsck(sb)
	}
	haveFsck := c.Fsck != ""
	if haveFsck {
		if st, err := os.Stat(c.Fsck); err != nil || !st.Mode().IsRegular() {
			haveFsck = false
		}
	}
	dc.NoFsck = !haveFsck
	if dc.Verdict.Action != fsckNone {
		c.Say("data partition %s: %s", dev, dc.Verdict.Reason)
	}
	switch {
	case !haveFsck && dc.Verdict.Action >= fsckPreen:
		c.Say("no e2fsck in this image (%s): mounting %s unchecked", c.Fsck, dev)
	case dc.Verdict.Action == fsckPreen:
		if r := c.run(dc, dev, "-f", "-p"); r.Exit&fsckUncorrected != 0 {
			c.Say("e2fsck -p could not fix everything: repairing with e2fsck -f -y")
			c.run(dc, dev, "-f", "-y")
		}
	case dc.Verdict.Action == fsckRepair:
		c.run(dc, dev, "-f", "-y")
	}
	err = c.Mount(dev, target, c.mountFlags(dc, flags))
	if err != nil && haveFsck && !dc.ranRepair() {
		dc.MountErr = err
		c.Say("mounting %s failed: %v; repairing with e2fsck -f -y and trying once more", dev, err)
		c.run(dc, dev, "-f", "-y")
		err = c.Mount(dev, target, c.mountFlags(dc, flags))
	}
	dc.Mounted = err == nil
	if dc.Verdict.Action >= fsckPreen || len(dc.Runs) > 0 || err != nil {
		c.Say("%s", dc.Summary())
	}
	if err != nil {
		if !haveFsck {
			return dc, fmt.Errorf("%w; the image has no e2fsck to repair it, so the node runs without its data partition", err)
		}
		return dc, fmt.Errorf("%w; e2fsck did not make it mountable, so the node runs without its data partition", err)
	}
	return dc, nil
}

// mountFlags adds MS_RDONLY when the last e2fsck run left errors.
func (c dataChecker) mountFlags(dc *dataCheck, flags uintptr) uintptr {
	if n := len(dc.Runs); n > 0 && dc.Runs[n-1].Exit&fsckUncorrected != 0 {
		if !dc.ReadOnly {
			c.Say("e2fsck left errors on %s: mounting it read-only", dc.Device)
		}
		dc.ReadOnly = true
		return flags | unix.MS_RDONLY
	}
	dc.ReadOnly = false
	return flags
}

// run runs e2fsck with args on dev, saying its output on the console, and
// records the run in dc.
func (c dataChecker) run(dc *dataCheck, dev string, args ...string) fsckRun {
	r := fsckRun{Args: append(args, dev)}
	c.Say("running e2fsck %s (this can take minutes)", strings.Join(r.Args, " "))
	out := &lineSayer{say: c.Say, prefix: "e2fsck: ", max: fsckMaxLines}
	cmd := exec.Command(c.Fsck, r.Args...)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	out.Close()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.Exit = fsckExit(ee.ExitCode())
	default:
		r.Exit, r.Err = fsckOperational, err
	}
	c.Say("%s", r)
	dc.Runs = append(dc.Runs, r)
	return r
}

// readSuperblock reads the ext4 superblock bytes of dev.
func readSuperblock(dev string) ([]byte, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, fmt.Errorf("reading the superblock: %w", err)
	}
	defer f.Close()
	b := make([]byte, ext4SuperSize)
	if _, err := f.ReadAt(b, ext4SuperOffset); err != nil {
		return nil, fmt.Errorf("reading the superblock of %s: %w", dev, err)
	}
	return b, nil
}
