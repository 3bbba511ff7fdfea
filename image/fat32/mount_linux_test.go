package fat32

import (
	"os"
	"os/exec"
	"testing"
)

// TestLoopMount mounts the Pi-shaped volume read-only with the Linux vfat
// driver and compares every file. It needs root and a kernel with vfat.
func TestLoopMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to loop-mount")
	}
	mount := needTool(t, "mount")
	tree := piTree()
	img := writeFile(t, 256*mib, tree, Options{ModTime: testTime, VolumeID: 0x1234ABCD})
	dir := t.TempDir()
	if out, err := exec.Command(mount, "-t", "vfat", "-o", "loop,ro,utf8", img, dir).CombinedOutput(); err != nil {
		t.Skipf("mount -o loop,ro failed (no loop devices or no vfat here?): %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	compareTrees(t, tree, os.DirFS(dir))
}
