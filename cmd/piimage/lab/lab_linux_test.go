package lab

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/admin"
)

// logWriter sends progress lines to t.Log.
type logWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// buildInit compiles cmd/init for this machine.
func buildInit(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go tool to build the init")
	}
	bin := filepath.Join(t.TempDir(), "init")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/piimage/piimage/cmd/init").CombinedOutput(); err != nil {
		t.Fatalf("building cmd/init: %v\n%s", err, out)
	}
	return bin
}

// TestLab brings the reference cluster up in namespaces, checks every
// node and the VIP, measures a cut of the master load balancer's link
// under load, checks the dashboard (in headless Chromium when installed)
// while the master is cut off, and takes the lab down, checking that
// nothing is left. The strict targets are the report's (make bench); this
// test asserts loose bounds so a busy machine does not make it flaky.
func TestLab(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	bin := buildInit(t)
	nodes, err := overlays.LoadDir("../../../overlays")
	if err != nil {
		t.Fatal(err)
	}
	name := "piimg-lab" + randomHex(3)
	runDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	log := &logWriter{t: t}
	start := time.Now()
	var recorded map[string]Proc
	t.Cleanup(func() {
		if err := Down(runDir, name, log); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if left := listNamespaces(name + "-"); len(left) > 0 {
			t.Errorf("namespaces left after down: %v", left)
		}
		for host, p := range recorded {
			if p.alive() {
				t.Errorf("%s's init (pid %d) still runs after down", host, p.PID)
			}
		}
		if _, err := os.Stat(filepath.Join(runDir, name)); !os.IsNotExist(err) {
			t.Errorf("the lab folder is left: %v", err)
		}
	})
	l, err := Up(ctx, Config{Name: name, RunDir: runDir, Init: bin, Nodes: nodes, Log: log, Ready: 45 * time.Second})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	defer l.Close()
	recorded = map[string]Proc{}
	for k, v := range l.State.Procs {
		recorded[k] = v
	}
	t.Logf("lab up in %v", time.Since(start).Round(time.Millisecond))

	// Nothing of the lab is in this namespace.
	if out, err := exec.Command("ip", "-o", "addr").Output(); err == nil && strings.Contains(string(out), "192.168.1.15/") {
		t.Errorf("the VIP is in the machine's own namespace:\n%s", out)
	}

	for _, n := range l.State.Plan.Nodes {
		st, err := l.Status(ctx, n.Host)
		if err != nil {
			t.Fatalf("%v", err)
		}
		if st.Hostname != n.Host || st.Role != n.Role {
			t.Errorf("%s /status = %s %s", n.Host, st.Hostname, st.Role)
		}
		var svcs []string
		for _, s := range st.Services {
			svcs = append(svcs, s.Name+"="+s.State+"/"+s.Health)
		}
		t.Logf("%s: %v %v", n.Host, st.Addresses, svcs)
	}
	b, code, err := l.get(ctx, "http://192.168.1.15/whoami", 2*time.Second)
	if err != nil || code != 200 || !strings.HasPrefix(string(b), "web0") {
		t.Fatalf("GET VIP /whoami = %d %q %v", code, b, err)
	}

	// The master's link cut under load.
	rep, err := l.Report(ctx, ReportConfig{Rate: 200, Before: 2 * time.Second, After: 3 * time.Second, Only: []string{ScenarioLBLink}, Log: log})
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	var sb strings.Builder
	rep.WriteText(&sb)
	t.Logf("\n%s", sb.String())
	s := rep.Scenarios[0]
	r := Analyze(s.Run, s.Fault)
	t.Logf("link cut: sent %d, failed %d (%.2f%%), longest gap %v, VIP moved after %v; errors %v",
		r.Sent, r.Failed, r.FailedPct(), r.LongestGap, s.VIPMoved, r.Errors)
	if r.Sent < 500 {
		t.Errorf("only %d requests sent", r.Sent)
	}
	if r.LongestGap > 2*time.Second {
		t.Errorf("longest gap without answers %v, want < 2s (target 0.5s)", r.LongestGap)
	}
	if r.FailedPct() > 5 {
		t.Errorf("%.2f%% failed, want < 5%% (target 1%%)", r.FailedPct())
	}
	if s.VIPMoved < 0 || s.VIPMoved > 2*time.Second {
		t.Errorf("VIP moved after %v, want within 2s", s.VIPMoved)
	}
	var html strings.Builder
	if err := rep.WriteHTML(&html); err != nil || !strings.Contains(html.String(), "<svg") {
		t.Errorf("HTML report: %v", err)
	}

	t.Run("dashboard", func(t *testing.T) { testDashboard(t, ctx, l) })
}

// testDashboard serves the lab's dashboard on loopback, cuts the master's
// link, and checks what the JSON and (with Chromium) the page show.
func testDashboard(t *testing.T, ctx context.Context, l *Lab) {
	ln, err := ListenDashboard(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ListenDashboard(ctx, "0.0.0.0:0"); err == nil {
		t.Error("the dashboard listens on the wildcard address")
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.ServeDashboard(sctx, ln) }()
	defer func() {
		stop()
		<-done
	}()
	base := "http://" + ln.Addr().String()
	view := func() admin.ClusterView {
		t.Helper()
		resp, err := http.Get(base + "/dashboard.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v admin.ClusterView
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := view()
	if len(v.Nodes) != 4 || len(v.VIPs) != 1 || strings.Join(v.VIPs[0].Holders, ",") != "lbmaster" {
		t.Fatalf("dashboard before the fault: %d nodes, VIPs %+v", len(v.Nodes), v.VIPs)
	}
	for _, n := range v.Nodes {
		if (n.Role == "lbmaster" || n.Role == "lbbackup") && (n.Requests == nil || len(n.Backends) != 2) {
			t.Errorf("%s: no balancer counters on the dashboard: %+v", n.Name, n)
		}
	}
	// The load balancer's own dashboard, through the lab's proxy.
	resp, err := http.Get(base + "/node/lbmaster/dashboard.json")
	if err == nil {
		var own admin.ClusterView
		json.NewDecoder(resp.Body).Decode(&own)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(own.Nodes) < 3 || len(own.VIPs) != 1 {
			t.Errorf("lbmaster's own dashboard: %d, %d nodes, VIPs %+v", resp.StatusCode, len(own.Nodes), own.VIPs)
		}
	} else {
		t.Errorf("lbmaster's own dashboard: %v", err)
	}

	// The replica's mirror lag, from the probe the dashboard writes on
	// the primary.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		v = view()
		if lag := nodeView(v, "web02").MirrorLagSeconds; lag != nil {
			t.Logf("web02 mirror lag %.3fs", *lag)
			if *lag > 5 {
				t.Errorf("web02 mirror lag %.3fs", *lag)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no mirror lag for web02 on the dashboard: %+v", nodeView(v, "web02"))
			break
		}
	}

	if err := l.Fail("lbmaster", HowLinkDown); err != nil {
		t.Fatal(err)
	}
	defer l.Heal("")
	deadline := time.Now().Add(10 * time.Second)
	for {
		v = view()
		if len(v.VIPs) == 1 && strings.Join(v.VIPs[0].Holders, ",") == "lbbackup" && !nodeView(v, "lbmaster").Reachable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard does not show the failover: VIPs %+v, lbmaster %+v", v.VIPs, nodeView(v, "lbmaster"))
		}
		time.Sleep(200 * time.Millisecond)
	}

	chromium := ""
	for _, c := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(c); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Skip("no chromium: install the Debian package chromium to check the page in a browser")
	}
	dom := dumpDOM(t, chromium, base+"/dashboard")
	for _, want := range []string{
		`data-holders="lbbackup"`, // the VIP pill
		`id="node-lbmaster"`, `data-health="unreachable"`,
		`id="node-lbbackup"`, `data-vip="192.168.1.15"`,
		`id="node-web01"`, `id="node-web02"`,
		"VIP 192.168.1.15 on lbbackup",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page in Chromium lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}

func nodeView(v admin.ClusterView, name string) admin.NodeView {
	for _, n := range v.Nodes {
		if n.Name == name {
			return n
		}
	}
	return admin.NodeView{}
}

// dumpDOM loads url in headless Chromium and returns the DOM after its
// scripts ran.
func dumpDOM(t *testing.T, chromium, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=3000", "--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// TestDownAfterCrash leaves what a lab that crashed halfway through up
// leaves (a recorded bridge, a node namespace with a frozen process in it,
// a namespace named like the lab's that no state file records) and checks
// that Down removes all of it.
func TestDownAfterCrash(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	runDir := t.TempDir()
	name := "piimg-labc" + randomHex(3)
	p, err := NewPlan(name, filepath.Join(runDir, name), referenceCluster(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, ns := range listNamespaces(name + "-") {
			killAll(ns, 0)
			deleteNS(ns)
		}
	})
	st := &State{Plan: p, Procs: map[string]Proc{}}
	n := p.Nodes[0]
	for _, ns := range []string{p.BridgeNS, n.NS} {
		if err := st.addNamespace(ns); err != nil {
			t.Fatal(err)
		}
		if err := createNS(ns); err != nil {
			t.Fatal(err)
		}
	}
	stray := name + "-web09"
	if err := createNS(stray); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.NS, "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	start, _ := procStart(cmd.Process.Pid)
	proc := Proc{PID: cmd.Process.Pid, Start: start}
	st.Procs[n.Host] = proc
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	// `ip netns exec` enters the namespace just after it starts.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		pids, err := pidsIn(n.NS)
		if err == nil && len(pids) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes in %s: %v %v", n.NS, pids, err)
		}
	}
	syscall.Kill(proc.PID, syscall.SIGSTOP)

	if err := Down(runDir, name, &logWriter{t: t}); err != nil {
		t.Fatal(err)
	}
	if left := listNamespaces(name + "-"); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if proc.alive() {
		t.Errorf("the frozen process %d survived", proc.PID)
	}
	if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
		t.Errorf("the lab folder is left: %v", err)
	}
	// Down of a lab that does not exist is fine.
	if err := Down(runDir, name, nil); err != nil {
		t.Errorf("second down: %v", err)
	}
}
