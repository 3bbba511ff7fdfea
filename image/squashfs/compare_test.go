//go:build bench

package squashfs

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// initProgram stands in for the piimage init: a Go program that links what
// the services use (HTTP, TLS, JSON, slog), about 10 MB.
const initProgram = `package main

import (
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"os"
)

func main() {
	slog.Info("start", "args", os.Args)
	_ = httputil.NewSingleHostReverseProxy
	_ = json.NewEncoder(os.Stdout).Encode(tls.VersionTLS13)
	_ = http.ListenAndServe(":80", http.FileServer(http.Dir("/srv")))
}
`

// rootTree lays out a realistic root on disk: the init binary built for
// the Pi (arm64), the host's CA bundle and time zone database if present,
// and a few small configuration files.
func rootTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(initProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module initbench\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "bin", "init"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, d := range []string{"etc/ssl/certs", "usr/share/zoneinfo"} {
		host := filepath.Join("/", d)
		if _, err := os.Stat(host); err != nil {
			continue
		}
		if err := os.CopyFS(filepath.Join(root, d), os.DirFS(host)); err != nil {
			t.Logf("copying %s: %v (skipped)", host, err)
		}
	}
	for name, data := range map[string]string{
		"etc/hostname": "pi\n", "etc/hosts": "127.0.0.1 localhost\n", "etc/passwd": "root:x:0:0::/:/bin/init\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run", "mnt/boot", "mnt/data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestCompareMksquashfs builds the same trees with mksquashfs -comp gzip
// and with Write and prints both sizes and times. Run with make bench or
// go test -tags bench -run Compare -v ./image/squashfs/.
func TestCompareMksquashfs(t *testing.T) {
	needTool(t, "mksquashfs")
	root := rootTree(t)
	binOnly := t.TempDir()
	if err := os.CopyFS(binOnly, os.DirFS(filepath.Join(root, "bin"))); err != nil {
		t.Fatal(err)
	}
	synthetic := t.TempDir()
	tree, _ := benchTree()
	if err := os.CopyFS(synthetic, tree); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, dir string }{
		{"init binary only", binOnly},
		{"root (binary, certs, zoneinfo)", root},
		{"synthetic 15 MB", synthetic},
	} {
		var input int64
		files := 0
		_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				info, _ := d.Info()
				input += info.Size()
				files++
			}
			return nil
		})
		theirs := filepath.Join(t.TempDir(), "mksquashfs.img")
		start := time.Now()
		run(t, "mksquashfs", c.dir, theirs, "-comp", "gzip", "-noappend", "-all-root", "-quiet", "-no-progress")
		theirTime := time.Since(start)
		theirInfo, err := os.Stat(theirs)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d files, %s in", c.name, files, fmtSize(input))
		t.Logf("  mksquashfs -comp gzip (level 9): %s in %v", fmtSize(theirInfo.Size()), theirTime.Round(time.Millisecond))
		for _, level := range []int{DefaultCompressionLevel, 9} {
			start = time.Now()
			ours := build(t, os.DirFS(c.dir), Options{ModTime: testTime, CompressionLevel: level})
			ourTime := time.Since(start)
			ourInfo, err := os.Stat(ours)
			if err != nil {
				t.Fatal(err)
			}
			compareDir(t, extract(t, ours), expected(t, os.DirFS(c.dir)), false)
			t.Logf("  squashfs.Write level %d:         %s in %v, ours/theirs %.3f", level, fmtSize(ourInfo.Size()), ourTime.Round(time.Millisecond), float64(ourInfo.Size())/float64(theirInfo.Size()))
		}
	}
}
