package lab

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
)

func referenceCluster(t *testing.T) []*overlays.Node {
	t.Helper()
	nodes, err := overlays.LoadDir("../../../overlays")
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func TestNewPlan(t *testing.T) {
	p, err := NewPlan("pil", "/run/x/pil", referenceCluster(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range p.Nodes {
		got = append(got, fmt.Sprintf("%s %s ns=%s port=%s %s admin=%s stats=%s www=%s", n.Host, n.Role, n.NS, n.Port, n.Addr, n.AdminURL(), n.Stats, n.WWW))
	}
	want := []string{
		"lbmaster lbmaster ns=pil-lbmaster port=p0-lbmaster 192.168.1.14/24 admin=http://192.168.1.14:9000 stats=http://192.168.1.14:1936 www=",
		"lbbackup lbbackup ns=pil-lbbackup port=p1-lbbackup 192.168.1.12/24 admin=http://192.168.1.12:9000 stats=http://192.168.1.12:1936 www=",
		"web01 web ns=pil-web01 port=p2-web01 192.168.1.10/24 admin=http://192.168.1.10:9000 stats= www=/run/x/pil/nodes/web01/www",
		"web02 web ns=pil-web02 port=p3-web02 192.168.1.11/24 admin=http://192.168.1.11:9000 stats= www=/run/x/pil/nodes/web02/www",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("nodes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p.BridgeNS != "pil-br" || p.ClientNS != "pil-client" || p.Subnet.String() != "192.168.1.0/24" {
		t.Errorf("plan = %s %s %s", p.BridgeNS, p.ClientNS, p.Subnet)
	}
	// The client plays the nodes' gateway.
	if p.Client.String() != "192.168.1.1/24" {
		t.Errorf("client = %s, want the gateway 192.168.1.1/24", p.Client)
	}
	if p.VIP().String() != "192.168.1.15" || len(p.VIPs) != 1 {
		t.Errorf("VIPs = %v", p.VIPs)
	}
	if len(p.ClientPool) != clientPoolSize || p.ClientPool[0].String() != "192.168.1.254" || p.ClientPool[clientPoolSize-1].String() != "192.168.1.223" {
		t.Errorf("client pool = %v, want 192.168.1.254 down to .223", p.ClientPool)
	}
}

func TestNewPlanRefuses(t *testing.T) {
	nodes := referenceCluster(t)
	other := *nodes[len(nodes)-1]
	eth0 := *other.Interfaces.Eth0
	eth0.Address = netip.MustParsePrefix("10.0.0.5/24")
	eth0.Gateway = netip.Addr{}
	other.Interfaces.Eth0, other.Interfaces.Wlan0 = &eth0, nil
	other.Hostname, other.Mirror = "web09", nil
	client := *nodes[len(nodes)-1]
	client.Hostname, client.Mirror = ClientName, nil
	ceth := *client.Interfaces.Eth0
	ceth.Address = netip.MustParsePrefix("192.168.1.40/24")
	client.Interfaces.Eth0, client.Interfaces.Wlan0 = &ceth, nil
	tests := []struct {
		name  string
		lab   string
		nodes []*overlays.Node
		want  string
	}{
		{"two subnets", "pil", append(append([]*overlays.Node{}, nodes...), &other), "outside 192.168.1.0/24"},
		{"reserved hostname", "pil", append(append([]*overlays.Node{}, nodes...), &client), "the lab's own"},
		{"bad lab name", "Pil Lab", nodes, "only a-z"},
		{"no nodes", "pil", nil, "no nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPlan(tt.lab, "/tmp/x", tt.nodes)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestClientAddr(t *testing.T) {
	subnet := netip.MustParsePrefix("10.1.2.0/29")
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		gateways []netip.Addr
		used     []string
		want     string
	}{
		{[]netip.Addr{a("10.1.2.1")}, nil, "10.1.2.1/29"},
		{[]netip.Addr{a("10.1.2.1")}, []string{"10.1.2.1"}, "10.1.2.6/29"},
		{nil, []string{"10.1.2.6", "10.1.2.5"}, "10.1.2.4/29"},
		{[]netip.Addr{a("10.9.9.1")}, nil, "10.1.2.6/29"},
	}
	for _, tt := range tests {
		used := map[netip.Addr]bool{}
		for _, u := range tt.used {
			used[a(u)] = true
		}
		got, err := clientAddr(subnet, tt.gateways, used)
		if err != nil || got.String() != tt.want {
			t.Errorf("clientAddr(%v, %v) = %v %v, want %s", tt.gateways, tt.used, got, err, tt.want)
		}
	}
	full := map[netip.Addr]bool{}
	for i := 1; i < 7; i++ {
		full[netip.AddrFrom4([4]byte{10, 1, 2, byte(i)})] = true
	}
	if _, err := clientAddr(subnet, nil, full); err == nil {
		t.Error("a full subnet gave a client address")
	}
}

func TestLabOverlay(t *testing.T) {
	nodes := referenceCluster(t)
	p, err := NewPlan("pil", "/run/x/pil", nodes)
	if err != nil {
		t.Fatal(err)
	}
	s := labSettings{MirrorSecret: "/run/x/pil/mirror-secret", StatsHash: "pbkdf2-sha256$10000$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"}
	for _, n := range nodes {
		pn, _ := p.Node(n.Hostname)
		b, err := labOverlay(n, pn, p, s)
		if err != nil {
			t.Fatalf("%s: %v", n.Hostname, err)
		}
		c, err := overlays.Parse("copy.yaml", b)
		if err != nil {
			t.Fatalf("%s: the copy does not parse: %v", n.Hostname, err)
		}
		if c.Eth0Address() != n.Eth0Address() || c.Hostname != n.Hostname {
			t.Errorf("%s: the copy changed the node's identity", n.Hostname)
		}
		switch c.Role {
		case overlays.RoleWeb:
			if c.Web.Root != pn.WWW {
				t.Errorf("%s: web.root = %s, want %s", n.Hostname, c.Web.Root, pn.WWW)
			}
			if c.Mirror.SecretFile != s.MirrorSecret || c.Mirror.PrimaryAddress.String() != "192.168.1.10" {
				t.Errorf("%s: mirror = %+v", n.Hostname, c.Mirror)
			}
		default:
			st := c.Balancer.Stats
			if st == nil || st.User != StatsUser || st.Bind != pn.Addr.Addr() || st.Port != statsPort {
				t.Errorf("%s: stats = %+v", n.Hostname, st)
			}
			if n.Balancer.Stats != nil {
				t.Errorf("%s: the original overlay was changed", n.Hostname)
			}
		}
	}
}

func TestSetDrain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lb.yaml")
	src, err := os.ReadFile("../../../overlays/lbmaster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, src, 0o644)
	for _, tt := range []struct {
		backend string
		drain   bool
		found   bool
	}{{"web02", true, true}, {"web09", true, false}, {"web02", false, true}} {
		found, err := setDrain(path, tt.backend, tt.drain)
		if err != nil || found != tt.found {
			t.Fatalf("setDrain(%s, %v) = %v %v", tt.backend, tt.drain, found, err)
		}
		n, err := overlays.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range n.Balancer.Backends {
			if b.Name == "web02" && tt.found && b.Drain != tt.drain {
				t.Errorf("web02 drain = %v, want %v", b.Drain, tt.drain)
			}
			if b.Name == "web01" && b.Drain {
				t.Error("web01 drained")
			}
		}
	}
}

func rec(startMS, latMS float64, status int, err string) Record {
	return Record{Start: time.Duration(startMS * float64(time.Millisecond)), Latency: time.Duration(latMS * float64(time.Millisecond)), Status: status, Err: err}
}

func TestAnalyze(t *testing.T) {
	run := &LoadRun{Records: []Record{
		rec(0, 2, 200, ""),
		rec(10, 4, 200, ""),
		rec(20, 6, 200, ""),
		rec(90, 30, 200, ""), // in flight at the fault (100ms); ends at 120
		rec(100, 900, 200, ""),
		rec(110, 0, 0, "dial tcp 192.168.1.15:80: connect: connection refused"),
		rec(120, 2000, 0, "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
		rec(400, 5, 503, ""),
		rec(2200, 3, 200, ""),
		rec(2300, 1, 200, ""),
	}}
	r := Analyze(run, 100*time.Millisecond)
	if r.Sent != 10 || r.Failed != 3 || r.InFlight != 1 {
		t.Errorf("sent %d failed %d in flight %d, want 10 3 1", r.Sent, r.Failed, r.InFlight)
	}
	// Answers end at 2, 14, 26, 120, 1000, 2203, 2301: the longest gap is
	// 1000 -> 2203.
	if r.LongestGap != 1203*time.Millisecond || r.GapAt != time.Second {
		t.Errorf("gap %v at %v, want 1.203s at 1s", r.LongestGap, r.GapAt)
	}
	if r.Before.Sent != 4 || r.Before.P50 != 4*time.Millisecond || r.Before.P99 != 30*time.Millisecond {
		t.Errorf("before = %+v", r.Before)
	}
	if r.During.Sent != 4 || r.During.Failed != 3 || r.During.P50 != 900*time.Millisecond {
		t.Errorf("during = %+v", r.During)
	}
	if r.After.Sent != 2 || r.After.Failed != 0 || r.After.P99 != 3*time.Millisecond {
		t.Errorf("after = %+v", r.After)
	}
	want := map[string]int{"connection refused": 1, "timeout": 1, "HTTP 503": 1}
	if fmt.Sprint(r.Errors) != fmt.Sprint(want) {
		t.Errorf("errors = %v, want %v", r.Errors, want)
	}
	if got := fmt.Sprintf("%.1f", r.FailedPct()); got != "30.0" {
		t.Errorf("failed%% = %s", got)
	}
	if Analyze(nil, 0).Sent != 0 {
		t.Error("Analyze(nil) sent requests")
	}
}

func TestQuantile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := quantile(ds, tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing")
	}
}

func testReport() *Report {
	run := &LoadRun{Config: LoadConfig{Duration: 3 * time.Second, Timeout: time.Second}, Records: []Record{
		rec(0, 2, 200, ""), rec(1000, 2, 200, ""), rec(1010, 300, 0, "connection reset by peer"), rec(2000, 3, 200, ""),
	}}
	return &Report{
		Title: "report <test>",
		Setup: []string{"setup & co"},
		Scenarios: []*Scenario{
			{Name: "master LB link down", Op: "cable pulled", Target: targetLinkCut, Check: checkLinkCut, Run: run, Fault: time.Second,
				VIPMoved: 310 * time.Millisecond, BackendOut: -1, Events: []Event{{At: 1310 * time.Millisecond, Label: "VIP on <lbbackup>"}}},
			{Name: "web node drained", Op: "drain", Target: targetPlanned, Check: checkPlanned, Run: run, Fault: 0, VIPMoved: -1, BackendOut: 20 * time.Millisecond},
			{Name: "rolling OTA of all nodes", Target: targetPlanned, Skipped: "not available yet"},
		},
	}
}

func TestReportText(t *testing.T) {
	var b strings.Builder
	if err := testReport().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	// Compare lines with their runs of spaces squeezed.
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	squeezed := strings.Join(lines, "\n")
	for _, want := range []string{
		"scenario sent failed in flight longest gap p50/p99 before during after VIP moved backend out target",
		"master LB link down 4 1 (25.00%) 0 1.00s 2.00ms/2.00ms 2.00ms/3.00ms - 310ms - gap < 0.5s, failed < 1%: MISSED",
		"web node drained 4 1 (25.00%) 0 1.00s - 2.00ms/2.00ms 3.00ms/3.00ms - 20ms 0 failed: MISSED",
		"rolling OTA of all nodes - - - - - - - - - 0 failed: not measured",
		"rolling OTA of all nodes: not available yet",
		"master LB link down: cable pulled\nfailures: connection reset 1; sent from +10ms to +10ms after the fault",
	} {
		if !strings.Contains(squeezed, want) {
			t.Errorf("text report lacks %q", want)
		}
	}
}

func TestReportHTML(t *testing.T) {
	var b strings.Builder
	if err := testReport().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"<svg", "report &lt;test&gt;", "setup &amp; co", "VIP on &lt;lbbackup&gt;", `class="missed"`, "not available yet", `stroke="#d22"`} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", " src=", "<lbbackup>", "<test>"} {
		if strings.Contains(out, bad) {
			t.Errorf("HTML report contains %q", bad)
		}
	}
}

func TestRunLoad(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		fmt.Fprintln(w, "web01")
	}))
	defer srv.Close()
	start := time.Now()
	run, err := RunLoad(context.Background(), LoadConfig{URL: srv.URL + "/whoami", Rate: 200, Duration: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Records) != 50 {
		t.Errorf("%d records, want 50 (200/s for 250ms)", len(run.Records))
	}
	for i, r := range run.Records {
		if !r.OK() || r.Backend != "web01" || r.Latency <= 0 {
			t.Errorf("record %d = %+v", i, r)
			break
		}
	}
	if last := run.Records[len(run.Records)-1].Start; last < 200*time.Millisecond || last > 600*time.Millisecond {
		t.Errorf("last request sent at %v, want about 245ms", last)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("the run took %v", time.Since(start))
	}
	// Timeouts are recorded as failures, within the bound.
	run, err = RunLoad(context.Background(), LoadConfig{URL: srv.URL + "/slow", Rate: 20, Duration: 100 * time.Millisecond, Timeout: 50 * time.Millisecond})
	if err != nil || len(run.Records) != 2 {
		t.Fatalf("slow run: %v, %d records", err, len(run.Records))
	}
	for _, r := range run.Records {
		if r.OK() || errorKind(r) != "timeout" {
			t.Errorf("slow request = %+v, want a timeout", r)
		}
	}
	var csv strings.Builder
	if err := run.WriteCSV(&csv); err != nil || !strings.HasPrefix(csv.String(), "start_ms,latency_ms,status,error,backend\n") || strings.Count(csv.String(), "\n") != 3 {
		t.Errorf("CSV = %q %v", csv.String(), err)
	}
	for _, bad := range []LoadConfig{
		{URL: srv.URL, Rate: 0, Duration: time.Second},
		{URL: srv.URL, Rate: MaxLoadRate + 1, Duration: time.Second},
		{URL: srv.URL, Rate: 10, Duration: MaxLoadDuration + time.Second},
		{URL: srv.URL, Rate: 10, Duration: 0},
		{URL: "", Rate: 10, Duration: time.Second},
	} {
		if _, err := RunLoad(context.Background(), bad); err == nil {
			t.Errorf("RunLoad(%+v) succeeded", bad)
		}
	}
}

func TestRunLoadStopsWithContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	run, err := RunLoad(ctx, LoadConfig{URL: srv.URL, Rate: 100, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 2*time.Second || len(run.Records) > 20 {
		t.Errorf("stopped after %v with %d records", time.Since(start), len(run.Records))
	}
}

const metricsText = `# HELP balancer_connections Client connections open now.
# TYPE balancer_connections gauge
balancer_connections 2
balancer_requests_total 1234
balancer_refused_total{reason="bad_request"} 0
balancer_backend_up{backend="web01"} 1
balancer_backend_up{backend="web02"} 0
balancer_backend_usable{backend="web01"} 1
balancer_backend_usable{backend="web02"} 0
balancer_backend_requests_total{backend="web01"} 700
balancer_backend_requests_total{backend="web02"} 534
balancer_backend_response_seconds_bucket{backend="web01",le="0.001"} 5
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(metricsText)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%d %+v", m.Requests, m.Backends)
	want := "1234 [{Name:web01 Up:true Usable:true Requests:700} {Name:web02 Up:false Usable:false Requests:534}]"
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if b := m.backend("web02"); b == nil || b.Usable {
		t.Errorf("backend(web02) = %+v", b)
	}
	for _, bad := range []string{
		"balancer_requests_total",
		"balancer_requests_total x",
		`balancer_backend_up{backend="web01" 1`,
		`balancer_backend_up{le="1"} 1`,
	} {
		if _, err := parseMetrics(bad); err == nil {
			t.Errorf("parseMetrics(%q) succeeded", bad)
		}
	}
	if v, ok := label(`a="x\"y",backend="web\\01"`, "backend"); !ok || v != `web\01` {
		t.Errorf("label = %q %v", v, ok)
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add(metricsText)
	f.Add(`balancer_backend_usable{backend="a\"b",x="y"} 1`)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMetrics(s)
		if err == nil {
			for _, b := range m.Backends {
				if m.backend(b.Name) == nil {
					t.Fatalf("backend %q not found", b.Name)
				}
			}
		}
	})
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p, err := NewPlan("pil", dir, referenceCluster(t))
	if err != nil {
		t.Fatal(err)
	}
	s := &State{Plan: p, Procs: map[string]Proc{"web01": {PID: 42, Start: 7}}, StatsPassword: "pw"}
	if err := s.addNamespace("pil-br"); err != nil {
		t.Fatal(err)
	}
	s.addNamespace("pil-br")
	if err := s.addFault(Fault{Node: "web01", How: HowKill}); err != nil {
		t.Fatal(err)
	}
	s.addFault(Fault{Node: "web02", How: HowFreeze})
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Namespaces) != 1 || got.Procs["web01"].PID != 42 || len(got.Faults) != 2 || got.Plan.VIP() != p.VIP() {
		t.Errorf("state = %+v", got)
	}
	if fi, err := os.Stat(statePath(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode: %v %v", fi.Mode(), err)
	}
	got.dropFaults("web01")
	if f := got.faultsOf(""); len(f) != 1 || f[0].Node != "web02" {
		t.Errorf("faults after healing web01: %+v", f)
	}
	if _, err := LoadState(t.TempDir()); err == nil || !strings.Contains(err.Error(), ErrNoLab.Error()) {
		t.Errorf("LoadState of an empty folder: %v", err)
	}
}

func TestMirrorProbe(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1000, 0)
	m := &mirrorProbe{path: filepath.Join(dir, MirrorProbeFile), now: func() time.Time { return now }}
	var stamps []time.Time
	for i := 0; i < 3; i++ {
		if err := m.write(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(m.path)
		ts, err := parseProbe(b)
		if err != nil || !ts.Equal(now) {
			t.Fatalf("probe file %q = %v %v, want %v", b, ts, err, now)
		}
		stamps = append(stamps, ts)
		now = now.Add(time.Second)
	}
	// now is 1003; writes at 1000, 1001, 1002.
	tests := []struct {
		seen time.Time
		want time.Duration
	}{
		{stamps[2], 0},               // the newest copy
		{stamps[1], time.Second},     // lacks the write of 1002
		{stamps[0], 2 * time.Second}, // lacks 1001 and 1002
		{time.Unix(0, 0), 3 * time.Second},
	}
	for _, tt := range tests {
		if got := m.lag(tt.seen); got != tt.want {
			t.Errorf("lag(%v) = %v, want %v", tt.seen.Unix(), got, tt.want)
		}
	}
	p, _ := NewPlan("pil", dir, referenceCluster(t))
	if mp := newMirrorProbe(p); mp == nil || mp.path != filepath.Join(dir, "nodes", "web01", "www", MirrorProbeFile) {
		t.Errorf("probe of the reference cluster: %+v", mp)
	}
}
