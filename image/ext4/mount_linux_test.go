package ext4

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMountReadWrite mounts the filesystem with the kernel (root only),
// reads every file, writes new files, unmounts, and checks it is still
// clean.
//
// The mount lives in a private mount namespace on a thread of its own:
// other processes on the machine (ip netns exec, unshare) copy the host's
// mount table, and a copy of our mount would keep the filesystem alive
// after umount, so e2fsck would see it still mounted.
func TestMountReadWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	needTool(t, "mount", "umount", "e2fsck")
	for _, tt := range []struct {
		name      string
		size      int64
		blockSize int
	}{
		{"1.5GiB", 1536 * mib, 4096},
		{"128MiB-1k", 128 * mib, 1024}, // the 60 MB file has a depth-1 extent tree
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			o.BlockSize = tt.blockSize
			mountReadWrite(t, buildImage(t, tt.size, bigTreeOnce(), o), bigTreeOnce())
		})
	}
}

// mountReadWrite mounts img in a private mount namespace, runs readWrite,
// unmounts and runs e2fsck.
func mountReadWrite(t *testing.T, img string, tree fs.FS) {
	dir := t.TempDir()
	skip := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the thread ends with the goroutine, taking its
		// mount namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			skip <- fmt.Sprintf("unshare(CLONE_NEWNS): %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			skip <- fmt.Sprintf("making mounts private: %v", err)
			return
		}
		if out, err := exec.Command("mount", "-o", "loop", img, dir).CombinedOutput(); err != nil {
			skip <- fmt.Sprintf("mount -o loop failed (no loop devices here?): %v: %s", err, out)
			return
		}
		defer func() {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount: %v: %s", err, out)
			}
		}()
		readWrite(t, tree, dir)
	}()
	<-done
	select {
	case msg := <-skip:
		t.Skip(msg)
	default:
	}
	fsck(t, img)
}

// readWrite compares the mounted tree, then writes a file, grows the
// 2,000-entry linear directory and deletes a file. It runs off the test
// goroutine, so it reports with Errorf.
func readWrite(t *testing.T, tree fs.FS, dir string) {
	compareTree(t, tree, dir, allPerm)
	if err := os.WriteFile(filepath.Join(dir, "new.txt"), []byte("written by the kernel\n"), 0o644); err != nil {
		t.Error(err)
	}
	for i := range 100 {
		p := filepath.Join(dir, "site/many", fmt.Sprintf("new-%03d", i))
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, i*100), 0o644); err != nil {
			t.Error(err)
			return
		}
	}
	if err := os.Remove(filepath.Join(dir, "hello.txt")); err != nil {
		t.Error(err)
	}
}
