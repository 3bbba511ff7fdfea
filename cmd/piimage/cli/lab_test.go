package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/piimage/piimage/cmd/piimage/lab"
)

func TestLabUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string // in the error, or in stdout when code is 0
	}{
		{[]string{"lab"}, 2, "name a subcommand"},
		{[]string{"lab", "help"}, 0, "Subcommands:"},
		{[]string{"lab", "frobnicate"}, 2, `unknown subcommand "frobnicate"`},
		{[]string{"lab", "fail", "lbmaster"}, 2, "--how"},
		{[]string{"lab", "fail", "lbmaster", "--how", "explode"}, 2, "link-down, kill, crash, freeze, reboot, partition"},
		{[]string{"lab", "exec", "lbmaster"}, 2, "a command after --"},
		{[]string{"lab", "heal", "a", "b"}, 2, "at most one node"},
		{[]string{"lab", "drain"}, 2, "one web node"},
		{[]string{"lab", "load", "--path", "whoami"}, 2, "must start with /"},
		{[]string{"lab", "load", "--rate", "x"}, 2, "invalid value"},
		{[]string{"lab", "down", "extra"}, 2, "takes no arguments"},
		{[]string{"lab", "up", "a", "b"}, 2, "at most one cluster folder"},
		{[]string{"lab", "dashboard", "x"}, 2, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			err := Run(context.Background(), tt.args, &stdout, &stderr)
			code := 0
			if err != nil {
				code = ExitCode(err)
			}
			if code != tt.code {
				t.Fatalf("exit %d (%v), want %d", code, err, tt.code)
			}
			got := stdout.String()
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestLabWithoutLab(t *testing.T) {
	if err := lab.Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	for _, sub := range []string{"status", "heal", "load", "dashboard"} {
		var stdout, stderr strings.Builder
		err := Run(context.Background(), []string{"lab", sub, "--run-dir", dir, "--name", "piimg-none"}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "piimage lab up") {
			t.Errorf("lab %s without a lab: %v, want advice to run lab up", sub, err)
		}
	}
	// Down of no lab is fine.
	var stdout, stderr strings.Builder
	if err := Run(context.Background(), []string{"lab", "down", "--run-dir", dir, "--name", "piimg-none"}, &stdout, &stderr); err != nil {
		t.Errorf("lab down without a lab: %v", err)
	}
}

func TestLabDashboardLoopbackOnly(t *testing.T) {
	if err := lab.Available(); err != nil {
		t.Skip(err)
	}
	for _, addr := range []string{"0.0.0.0:0", "192.168.1.15:80", ":8377", "localhost:8377"} {
		if ln, err := lab.ListenDashboard(context.Background(), addr); err == nil {
			ln.Close()
			t.Errorf("ListenDashboard(%s) succeeded", addr)
		}
	}
}
