package rootfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piimage/piimage/overlays"
)

func TestCmdline(t *testing.T) {
	a, err := Cmdline(0x316ce86b, "a")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"root=PARTUUID=316ce86b-02 ", "rootfstype=squashfs", " ro ", "init=/init", "rootwait"} {
		if !strings.Contains(a, want) {
			t.Errorf("slot a cmdline %q lacks %q", a, want)
		}
	}
	b, _ := Cmdline(0x316ce86b, "b")
	if !strings.Contains(b, "root=PARTUUID=316ce86b-03 ") {
		t.Errorf("slot b cmdline %q does not boot partition 3", b)
	}
	if _, err := Cmdline(1, "c"); err == nil {
		t.Error("slot c accepted")
	}
}

func TestDerivedIdentifiers(t *testing.T) {
	if DiskID("web01") != DiskID("web01") {
		t.Error("DiskID is not stable")
	}
	if DiskID("web01") == DiskID("web02") {
		t.Error("two nodes share a disk identifier")
	}
	u := derivedUUID("data uuid", "web01")
	if u[6]>>4 != 5 || u[8]&0xc0 != 0x80 {
		t.Errorf("derived UUID %x lacks version/variant bits", u)
	}
}

func TestDataTreeCopiesSite(t *testing.T) {
	site := t.TempDir()
	os.MkdirAll(filepath.Join(site, "img"), 0o755)
	os.WriteFile(filepath.Join(site, "index.html"), []byte("<h1>hi</h1>"), 0o644)
	os.WriteFile(filepath.Join(site, "img", "a.png"), []byte("png"), 0o644)
	os.Symlink("index.html", filepath.Join(site, "home.html"))
	node := &overlays.Node{Hostname: "web01", Role: overlays.RoleWeb}
	tree, err := dataTree(Options{Node: node, OverlayBytes: []byte("hostname: web01\n"), SiteDir: site})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"www/index.html":         "<h1>hi</h1>",
		"www/img/a.png":          "png",
		"piimage/last-good.yaml": "hostname: web01\n",
	} {
		got, err := fs.ReadFile(tree, path)
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if target, err := fs.ReadLink(tree, "www/home.html"); err != nil || target != "index.html" {
		t.Errorf("symlink www/home.html -> %q, %v", target, err)
	}
	st, err := fs.Stat(tree, "piimage/last-good.yaml")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("last-good.yaml mode %v, %v; want 0600", st.Mode(), err)
	}
}

func TestDataTreeDefaultPageOnlyOnWebNodes(t *testing.T) {
	web, _ := dataTree(Options{Node: &overlays.Node{Hostname: "web01", Role: overlays.RoleWeb}})
	if b, err := fs.ReadFile(web, "www/index.html"); err != nil || !strings.Contains(string(b), "web01") {
		t.Errorf("web node default page: %q, %v", b, err)
	}
	lb, _ := dataTree(Options{Node: &overlays.Node{Hostname: "lbmaster", Role: overlays.RoleLBMaster}})
	if _, err := fs.Stat(lb, "www"); err == nil {
		t.Error("a load balancer got a web root")
	}
}
