package boards

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// Fetch returns the folder of module m in the Go module cache, downloading it
// through the module proxy first when it is not cached. srcDir is the
// piimage source tree: its go.sum pins m's hash, so the download is verified.
func Fetch(ctx context.Context, srcDir string, m Module) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", m.String())
	cmd.Dir = srcDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct {
		Dir   string
		Error string
	}
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil && runErr == nil {
		return "", fmt.Errorf("fetching %s: reading go mod download output: %w", m, err)
	}
	if info.Error != "" || runErr != nil || info.Dir == "" {
		msg := strings.TrimSpace(info.Error)
		if msg == "" {
			msg = strings.TrimSpace(stderr.String())
		}
		if msg == "" && runErr != nil {
			msg = runErr.Error()
		}
		return "", fmt.Errorf("fetching %s through the Go module proxy: %s (the first build needs the module proxy; later builds use the module cache)", m, msg)
	}
	return info.Dir, nil
}

// CheckKernelArch reports an error unless the kernel image head (its first
// 64 bytes or more) is a Linux kernel for arch: "arm64" (Image header magic
// "ARM\x64" at offset 56) or "arm" (zImage magic 0x016f2818 at offset 0x24).
func CheckKernelArch(head []byte, arch string) error {
	isARM64 := len(head) >= 60 && string(head[56:60]) == "ARM\x64"
	isARM := len(head) >= 0x28 && binary.LittleEndian.Uint32(head[0x24:]) == 0x016f2818
	got := "unknown"
	switch {
	case isARM64:
		got = "arm64"
	case isARM:
		got = "arm"
	}
	if got != arch {
		return fmt.Errorf("kernel is for %s, but the board's init is built for %s", got, arch)
	}
	return nil
}
