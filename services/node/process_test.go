package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/admin"
)

func TestProcessFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--state", "x"}, "--state and --overlay are required"},
		{[]string{"--overlay", "x"}, "--state and --overlay are required"},
		{[]string{"--state", "x", "--overlay", "y", "extra"}, `unexpected argument "extra"`},
		{[]string{"--bogus"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var stderr syncBuffer
		code := Main(context.Background(), tt.args, io.Discard, &stderr, nil)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("Main(%q) = %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

// TestProcessRefusesInitialNetns runs process mode in the test's own
// network namespace, which must be refused before anything is touched.
func TestProcessRefusesInitialNetns(t *testing.T) {
	if initial, err := inInitialNamespace("net"); err == nil && !initial {
		t.Skip("the test itself runs outside the initial network namespace")
	}
	dir := t.TempDir()
	ov := filepath.Join(dir, "node.yaml")
	writeFile(t, ov, goodOverlay)
	state := filepath.Join(dir, "state")
	var stdout, stderr syncBuffer
	code := Main(context.Background(), []string{"--state", state, "--overlay", ov}, &stdout, &stderr, nil)
	if code == 0 {
		t.Fatal("process mode ran in the initial network namespace")
	}
	if !strings.Contains(stderr.String(), "ip netns exec") || !strings.Contains(stderr.String(), "initial network namespace") {
		t.Errorf("stderr does not explain the refusal: %q", stderr.String())
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the refused run created its state folder: %v", err)
	}
}

func TestProcessAdminAddrs(t *testing.T) {
	n, err := overlays.Parse("node.yaml", []byte(goodOverlay))
	if err != nil {
		t.Fatal(err)
	}
	l := loaded{node: n}
	tests := []struct {
		flag    string
		network bool
		want    string
		wantErr string
	}{
		{"", true, "127.0.0.1:9000 10.77.0.2:9000", ""},
		{"", false, "127.0.0.1:9000", ""},
		{"127.0.0.1:0", false, "127.0.0.1:0", ""},
		{"10.77.0.2:9100", true, "10.77.0.2:9100", ""},
		{"10.77.0.2:9100", false, "", "loopback address only"},
		{"0.0.0.0:9000", true, "", "wildcard"},
		{":9000", false, "", "IP address"},
	}
	for _, tt := range tests {
		got, err := processAdminAddrs(tt.flag, l, tt.network)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("processAdminAddrs(%q, %v) error = %v, want %q", tt.flag, tt.network, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("processAdminAddrs(%q, %v) = %q, %v; want %q", tt.flag, tt.network, got, err, tt.want)
		}
	}
}

var adminLine = regexp.MustCompile(`admin API on http://(127\.0\.0\.1:\d+)`)

// TestProcessNoNetwork runs a whole node in the test process with
// --no-network: the supervisor re-executes the test binary as the "web"
// service (TestMain), and the admin API on loopback shows it.
func TestProcessNoNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: with --no-network each service gets a network namespace of its own")
	}
	t.Setenv(childEnv, "1") // inherited by the re-executed service
	dir := t.TempDir()
	ov := filepath.Join(dir, "node.yaml")
	writeFile(t, ov, goodOverlay)
	rel := filepath.Join(dir, "release.json")
	writeFile(t, rel, `{"version":"v9.9.9","board":"pi3","built":"now","kernel":"k","firmware":"f"}`)
	state := filepath.Join(dir, "state")
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--state", state, "--overlay", ov, "--release", rel,
			"--no-network", "--admin-addr", "127.0.0.1:0"}, &stdout, &stderr, testRegistry(nil))
	}()
	var base string
	waitFor(t, "the node to be up", func() bool {
		if m := adminLine.FindStringSubmatch(stdout.String()); m != nil && strings.Contains(stdout.String(), "piimage: node1 up (overlay from file)") {
			base = "http://" + m[1]
			return true
		}
		select {
		case code := <-done:
			t.Fatalf("Main returned %d early\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		default:
		}
		return false
	})
	if !strings.Contains(stdout.String(), "not built into this image yet: mirror") {
		t.Errorf("stdout does not name the missing mirror service:\n%s", stdout.String())
	}
	var st admin.Status
	waitFor(t, "web to be healthy", func() bool {
		st = getStatus(t, base)
		return len(st.Services) == 1 && st.Services[0].Health == "ok"
	})
	if st.Hostname != "node1" || st.Role != "web" || st.Version != "v9.9.9" || st.Slot != "" ||
		st.Overlay.Source != admin.SourceFile || st.Overlay.Path != ov || len(st.Addresses) != 0 {
		t.Errorf("status = %+v", st)
	}
	if s := st.Services[0]; s.Name != "web" || s.State != "running" || s.PID == 0 {
		t.Errorf("web = %+v", s)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	if child, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(st.Services[0].PID), "ns", "net")); err != nil || child == self {
		t.Errorf("with --no-network the service runs in network namespace %q (%v); want a new one, not %q", child, err, self)
	}
	if code, body := httpGet(t, base+"/health"); code != 200 {
		t.Errorf("/health = %d %q", code, body)
	}
	waitFor(t, "the service's log line", func() bool {
		_, body := httpGet(t, base+"/logs?service=web")
		return strings.Contains(body, "fake running as node1")
	})
	if _, body := httpGet(t, base+"/logs?service=init"); !strings.Contains(body, "node1 up") {
		t.Errorf("init log = %q", body)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "last-good.yaml")); string(b) != goodOverlay {
		t.Errorf("last-good.yaml = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "etc", "hosts")); !strings.Contains(string(b), "10.77.0.2\tnode1") {
		t.Errorf("etc/hosts = %q", b)
	}
	pid := st.Services[0].PID
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("Main = %d, want 0\nstderr:\n%s", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Main did not return after cancel")
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); !os.IsNotExist(err) {
		t.Errorf("service pid %d still exists after the node stopped", pid)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "logs", "init.log")); !strings.Contains(string(b), "fake stopping") {
		t.Errorf("logs/init.log lacks the service's last line:\n%s", b)
	}
}

func getStatus(t *testing.T, base string) admin.Status {
	t.Helper()
	code, body := httpGet(t, base+"/status")
	var st admin.Status
	if code != 200 {
		t.Fatalf("/status = %d %q", code, body)
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v", err)
	}
	return st
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
