package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// protectDataStep checks the data partition once the overlay is known:
// that it is mounted nodev, nosuid and noexec, whether the kernel has
// recorded file system errors on it, and that the secret files on it are
// readable by root only (fixing their mode).
//
// It runs no fsck itself: mountData ran e2fsck before the mount when the
// superblock asked for it (fsck_linux.go), and the kernel replays the
// ext4 journal on mount. Errors the kernel has recorded since are
// reported here; the next boot's check repairs them.
func (b *boot) protectDataStep() error {
	if !slices.Contains(b.mounted, "/data") {
		return nil
	}
	var problems []string
	var st unix.Statfs_t
	if err := unix.Statfs("/data", &st); err == nil {
		const want = unix.ST_NODEV | unix.ST_NOSUID | unix.ST_NOEXEC
		if st.Flags&want != want {
			problems = append(problems, fmt.Sprintf("/data is mounted with flags %#x, not nodev,nosuid,noexec", st.Flags))
		}
	}
	if b.disk != "" {
		dir := filepath.Join("/sys/fs/ext4", PartitionDevice(b.disk, 4))
		if n, err := os.ReadFile(filepath.Join(dir, "errors_count")); err == nil && strings.TrimSpace(string(n)) != "0" {
			b.con.say("the kernel recorded %s errors on the data partition; the next boot checks it with e2fsck", strings.TrimSpace(string(n)))
		}
	}
	fixed, err := protectSecrets(secretFiles("/data", lastGood, b.loaded.node))
	for _, f := range fixed {
		b.con.say("secret file %s made readable by root only", f)
	}
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// machineInit reports whether this process is the machine's init: PID 1
// in the initial PID namespace, where PID 2 is the kernel's kthreadd.
func machineInit() bool {
	if os.Getpid() != 1 {
		return false
	}
	ok, _ := isKernelThread(2)
	return ok
}
