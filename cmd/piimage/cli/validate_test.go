package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateAndBuildRefuseBadOverlays(t *testing.T) {
	good, err := os.ReadFile(srcTree + "/overlays/web01.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		from    string // replaced in web01.yaml
		to      string
		wantMsg []string
	}{
		{"bad address", "192.168.1.10/24", "192.168.1.300/24", []string{"bad.yaml:", "interfaces.eth0.address"}},
		{"unknown field", "hostname: web01", "hostname: web01\ncolour: blue", []string{"bad.yaml:", "colour"}},
		{"bad hostname", "hostname: web01", "hostname: web_01!", []string{"bad.yaml:", "hostname"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(good), tt.from) {
				t.Fatalf("web01.yaml has no %q", tt.from)
			}
			bad := filepath.Join(t.TempDir(), "bad.yaml")
			os.WriteFile(bad, []byte(strings.Replace(string(good), tt.from, tt.to, 1)), 0o644)
			for _, args := range [][]string{
				{"validate", bad},
				{"build", "--overlay", bad, "--out", filepath.Join(t.TempDir(), "x.img"), "--src", srcTree},
			} {
				var stdout, stderr bytes.Buffer
				err := Run(context.Background(), args, &stdout, &stderr)
				if err == nil {
					t.Fatalf("%s accepted a bad overlay", args[0])
				}
				msg := err.Error() + stderr.String()
				for _, w := range tt.wantMsg {
					if !strings.Contains(msg, w) {
						t.Errorf("%s: message %q lacks %q", args[0], msg, w)
					}
				}
			}
		})
	}
}

func TestValidateReferenceCluster(t *testing.T) {
	files, _ := filepath.Glob(srcTree + "/overlays/*.yaml")
	if len(files) < 4 {
		t.Fatalf("reference cluster has %d overlays, want 4", len(files))
	}
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), append([]string{"validate"}, files...), &stdout, &stderr); err != nil {
		t.Fatalf("validate: %v\n%s", err, stderr.String())
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"frobnicate"}, &stdout, &stderr); err == nil || ExitCode(err) != 2 {
		t.Errorf("unknown command: err %v, exit %d; want a usage error", err, ExitCode(err))
	}
	if err := Run(context.Background(), []string{"build", "--role", "web", "--all"}, &stdout, &stderr); err == nil || ExitCode(err) != 2 {
		t.Errorf("--role with --all: err %v; want a usage error", err)
	}
}
