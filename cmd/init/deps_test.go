package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestInitDoesNotLinkTheBuilder keeps the device binary small: the init
// must not depend on the image builder's packages (DESIGN.md, "Which way
// imports run").
func TestInitDoesNotLinkTheBuilder(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/piimage/piimage/rootfs",
		"github.com/piimage/piimage/boards",
		"github.com/piimage/piimage/cmd/piimage",
		"github.com/piimage/piimage/image/fat32",
		"github.com/piimage/piimage/image/squashfs",
		"github.com/piimage/piimage/image/ext4",
		"github.com/diskfs/go-diskfs",
		"github.com/gokrazy/kernel.rpi",
		"github.com/gokrazy/firmware",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("the init links %s", dep)
			}
		}
	}
}
