package rootfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/piimage/piimage/boards"
)

// CompileInit cross-compiles ./cmd/init of srcDir for the board into out:
// static (CGO_ENABLED=0), stripped, without build IDs or VCS stamps, so the
// same source gives the same bytes.
func CompileInit(ctx context.Context, srcDir string, b boards.Board, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build",
		"-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=",
		"-o", out, "./cmd/init")
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+b.GOARCH, "CGO_ENABLED=0")
	if b.GOARM != "" {
		cmd.Env = append(cmd.Env, "GOARM="+b.GOARM)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("compiling the init for %s (GOARCH=%s): %v\n%s", b.Name, b.GOARCH, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
