package node

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piimage/piimage/internal/netnstest"
	"github.com/piimage/piimage/services/admin"
)

// TestIntegrationNetns builds cmd/init, runs it in process mode inside a
// network namespace whose eth0 is a veth to a second "client" namespace,
// and reads /status from the client over 10.77.0.0/24 (test-only
// addresses that exist only inside these namespaces). Then it restarts the
// node on a broken overlay and checks it came up on the last good copy.
func TestIntegrationNetns(t *testing.T) {
	dir, bin := buildInitForNetns(t)
	// The built binary, run in this (initial) namespace, must refuse.
	if initial, err := inInitialNamespace("net"); err == nil && initial {
		refusedState := filepath.Join(dir, "refused")
		writeFile(t, filepath.Join(dir, "refused.yaml"), goodOverlay)
		out, err := exec.Command(bin, "--state", refusedState, "--overlay", filepath.Join(dir, "refused.yaml")).CombinedOutput()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), "ip netns exec") {
			t.Errorf("init in the initial namespace: exit %d, output %q; want 2 and a refusal", code, out)
		}
	}
	nodeNS, clientNS := newNetnsPair(t)

	ov := filepath.Join(dir, "node.yaml")
	state := filepath.Join(dir, "state")
	overlay := `hostname: itest1
role: web
interfaces:
  eth0:
    address: 10.77.0.2/24
    gateway: 10.77.0.1
dns: [10.77.0.1]
`
	writeFile(t, ov, overlay)
	client := clientIn(clientNS, 5*time.Second)

	// First run: the overlay is good.
	n := startNode(t, nodeNS, bin, "--state", state, "--overlay", ov)
	n.waitOutput(t, "piimage: itest1 up (overlay from file)")
	st := clientStatus(t, client)
	if st.Hostname != "itest1" || st.Role != "web" || st.Overlay.Source != admin.SourceFile || st.Overlay.FallbackReason != "" {
		t.Errorf("status = %+v", st)
	}
	if !hasAddress(st, "eth0", "10.77.0.2/24") {
		t.Errorf("addresses = %+v, want eth0 10.77.0.2/24", st.Addresses)
	}
	n.waitOutput(t, "eth0 [10.77.0.2/24] configured")
	out, err := exec.Command("ip", "-n", nodeNS.Name, "-4", "route", "show", "default").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "default via 10.77.0.1 dev eth0") {
		t.Errorf("default route in the node namespace: %v %s", err, out)
	}
	if _, err := exec.LookPath("ss"); err == nil {
		out, err := nodeNS.Command("ss", "-Hltn", "sport", "= :9000").CombinedOutput()
		var local []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); len(f) >= 4 {
				local = append(local, f[3])
			}
		}
		t.Logf("admin listeners: %q", local)
		if err != nil || strings.Join(local, " ") != "10.77.0.2:9000 127.0.0.1:9000" && strings.Join(local, " ") != "127.0.0.1:9000 10.77.0.2:9000" {
			t.Errorf("admin listeners in the node namespace = %q (%v); want only 127.0.0.1:9000 and 10.77.0.2:9000\n%s", local, err, out)
		}
	}
	if err := n.stop(); err != nil {
		t.Errorf("first run: %v\n%s", err, n.output())
	}

	// Second run: the overlay is broken; the state folder's last good
	// copy, written by the first run, takes over.
	writeFile(t, ov, strings.Replace(overlay, "gateway:", "gatway:", 1))
	n = startNode(t, nodeNS, bin, "--state", state, "--overlay", ov)
	n.waitOutput(t, "piimage: itest1 up (overlay from last-good)")
	st = clientStatus(t, client)
	if st.Overlay.Source != admin.SourceLastGood || st.Overlay.Path != filepath.Join(state, "last-good.yaml") ||
		!strings.Contains(st.Overlay.FallbackReason, `unknown field "gatway"`) {
		t.Errorf("overlay = %+v, want last-good with the reason", st.Overlay)
	}
	if st.Hostname != "itest1" || !hasAddress(st, "eth0", "10.77.0.2/24") {
		t.Errorf("status = %+v", st)
	}
	if !strings.Contains(n.output(), `unknown field "gatway"`) {
		t.Errorf("the console does not say why:\n%s", n.output())
	}
	if err := n.stop(); err != nil {
		t.Errorf("second run: %v\n%s", err, n.output())
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func hasAddress(st admin.Status, ifc, addr string) bool {
	for _, a := range st.Addresses {
		if a.Interface == ifc && a.Address == addr {
			return true
		}
	}
	return false
}

func clientStatus(t *testing.T, c *http.Client) admin.Status {
	t.Helper()
	var st admin.Status
	var lastErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := c.Get("http://10.77.0.2:9000/status")
		if err != nil {
			lastErr = err
			continue
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && resp.StatusCode == 200 {
			return st
		}
		lastErr = fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	t.Fatalf("GET /status from the client namespace: %v", lastErr)
	return st
}

// buildInitForNetns skips unless the test can make network namespaces, and
// builds cmd/init (with every service it registers) into a temporary folder,
// which it returns with the binary's path.
func buildInitForNetns(t *testing.T) (dir, bin string) {
	t.Helper()
	netnstest.Require(t)
	bin = buildInit(t)
	return filepath.Dir(bin), bin
}

// runningNode is the init running in process mode under `ip netns exec`.
type runningNode struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan error
}

func startNode(t *testing.T, ns *netnstest.NS, bin string, args ...string) *runningNode {
	t.Helper()
	return startCmd(t, "ip", append([]string{"netns", "exec", ns.Name, bin}, args...)...)
}

// startCmd starts a command whose output the test reads, and kills it at
// the end of the test if it still runs.
func startCmd(t *testing.T, name string, args ...string) *runningNode {
	t.Helper()
	cmd := exec.Command(name, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	n := &runningNode{cmd: cmd, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			n.mu.Lock()
			n.out.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		n.done <- err
	}()
	t.Cleanup(func() {
		select {
		case <-n.done:
		default:
			cmd.Process.Kill()
			<-n.done
		}
	})
	return n
}

func (n *runningNode) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

func (n *runningNode) waitOutput(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(n.output(), s) {
		select {
		case err := <-n.done:
			n.done <- err
			t.Fatalf("the node exited (%v) before printing %q:\n%s", err, s, n.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q:\n%s", s, n.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (n *runningNode) stop() error {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.done:
		n.done <- err
		return err
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		return fmt.Errorf("did not stop within 20s")
	}
}
