package admin

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/supervise"
)

// fakeNode serves a Server's API for a node with the given addresses and
// services.
func fakeNode(t *testing.T, host, role string, addrs []string, svcs []supervise.Status) *httptest.Server {
	t.Helper()
	s := &Server{
		Node:     &overlays.Node{Hostname: host, Role: role},
		Started:  time.Unix(0, 0),
		Now:      func() time.Time { return time.Unix(125, 0) },
		Services: &fakeServices{status: svcs},
		Addresses: func() []Address {
			var out []Address
			for _, a := range addrs {
				out = append(out, Address{Interface: "eth0", Address: a})
			}
			return out
		},
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func running(names ...string) []supervise.Status {
	var out []supervise.Status
	for _, n := range names {
		out = append(out, supervise.Status{Name: n, State: supervise.StateRunning, Health: supervise.HealthOK})
	}
	return out
}

// deadURL returns a URL on which nothing listens.
func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func TestDashboardView(t *testing.T) {
	vip := netip.MustParsePrefix("192.168.1.15/24")
	backup := fakeNode(t, "lbbackup", "lbbackup", []string{"192.168.1.12/24", "192.168.1.15/24"}, running("balancer", "vip"))
	web := fakeNode(t, "web01", "web", []string{"192.168.1.10/24"}, []supervise.Status{
		{Name: "web", State: supervise.StateRunning, Health: supervise.HealthOK},
	})
	dead := deadURL(t)

	now := time.Unix(5000, 0)
	var counter uint64 = 1000
	d := &Dashboard{
		Local: func() Status {
			return Status{Hostname: "lbmaster", Role: "lbmaster", Addresses: []Address{{Interface: "eth0", Address: "192.168.1.14/24"}},
				Services: running("balancer", "vip")}
		},
		Nodes:    []string{web.URL, dead, backup.URL},
		VIPs:     []netip.Prefix{vip},
		Expected: roleServices,
		Extra: func(ctx context.Context, n *NodeView) {
			if n.Name == "lbmaster" {
				c := counter
				n.Requests = &c
				n.Backends = []BackendView{{Name: "web01", Up: true, Usable: true}, {Name: "web02", Up: false}}
			}
			if n.Name == "web01" {
				lag := 0.25
				n.MirrorLagSeconds = &lag
			}
		},
		Now: func() time.Time { return now },
	}
	v := d.View(context.Background())
	var names []string
	for _, n := range v.Nodes {
		names = append(names, n.Name)
	}
	// Load balancers first, then the rest by name; the dead node keeps
	// its URL's host as name.
	want := []string{"lbmaster", "lbbackup", "web01", strings.TrimPrefix(dead, "http://")}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("nodes = %v, want %v", names, want)
	}
	if len(v.VIPs) != 1 || v.VIPs[0].Address != "192.168.1.15" || strings.Join(v.VIPs[0].Holders, ",") != "lbbackup" {
		t.Errorf("VIPs = %+v, want 192.168.1.15 on lbbackup", v.VIPs)
	}
	byName := map[string]NodeView{}
	for _, n := range v.Nodes {
		byName[n.Name] = n
	}
	tests := []struct {
		name      string
		reachable bool
		healthy   bool
		problem   string
		holds     string
	}{
		{"lbmaster", true, false, "backend web02 down", ""},
		{"lbbackup", true, true, "", "192.168.1.15"},
		{"web01", true, false, "mirror not running", ""},
		{want[3], false, false, "unreachable", ""},
	}
	for _, tt := range tests {
		n := byName[tt.name]
		if n.Reachable != tt.reachable || n.Healthy != tt.healthy {
			t.Errorf("%s: reachable %v healthy %v, want %v %v (%v)", tt.name, n.Reachable, n.Healthy, tt.reachable, tt.healthy, n.Problems)
		}
		if tt.problem != "" && !strings.Contains(strings.Join(n.Problems, "; "), tt.problem) {
			t.Errorf("%s: problems %q, want one with %q", tt.name, n.Problems, tt.problem)
		}
		if strings.Join(n.HoldsVIP, ",") != tt.holds {
			t.Errorf("%s: holds %v, want %q", tt.name, n.HoldsVIP, tt.holds)
		}
	}
	if v.Healthy != 1 {
		t.Errorf("healthy = %d, want 1", v.Healthy)
	}
	if byName[want[3]].Error == "" {
		t.Error("the unreachable node has no error")
	}
	if r := byName["lbmaster"].RequestRate; r != nil {
		t.Errorf("first view has a rate %v; it needs two readings", *r)
	}
	if l := byName["web01"].MirrorLagSeconds; l == nil || *l != 0.25 {
		t.Errorf("mirror lag = %v", l)
	}

	// Within the cache time the same view comes back.
	now = now.Add(100 * time.Millisecond)
	counter = 1100
	if v2 := d.View(context.Background()); *v2.Nodes[0].Requests != 1000 {
		t.Errorf("a view within %v was not the cached one", cacheFor)
	}
	now = now.Add(1900 * time.Millisecond)
	counter = 1400
	v3 := d.View(context.Background())
	if r := v3.Nodes[0].RequestRate; r == nil || *r != 200 {
		t.Errorf("rate = %v, want 200 req/s (400 requests in 2s)", r)
	}

	// A node that answered once keeps its name and role when it stops.
	backup.Close()
	now = now.Add(time.Second)
	v4 := d.View(context.Background())
	if n := v4.Nodes[1]; n.Name != "lbbackup" || n.Role != "lbbackup" || n.Reachable {
		t.Errorf("stopped backup = %s %s reachable %v, want lbbackup lbbackup false", n.Name, n.Role, n.Reachable)
	}
	if len(v4.VIPs[0].Holders) != 0 {
		t.Errorf("VIP holders after the backup stopped: %v", v4.VIPs[0].Holders)
	}
}

func TestDashboardSplitBrainAndNoHolder(t *testing.T) {
	a := fakeNode(t, "lb1", "lbmaster", []string{"10.0.0.2/24", "10.0.0.9/24"}, running("balancer", "vip"))
	b := fakeNode(t, "lb2", "lbbackup", []string{"10.0.0.3/24", "10.0.0.9/24"}, running("balancer", "vip"))
	d := &Dashboard{Nodes: []string{a.URL, b.URL}, VIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24"), netip.MustParsePrefix("10.0.0.10/24")}}
	v := d.View(context.Background())
	if len(v.VIPs) != 2 || len(v.VIPs[0].Holders) != 2 || len(v.VIPs[1].Holders) != 0 {
		t.Errorf("VIPs = %+v, want 10.0.0.9 on both, 10.0.0.10 on none", v.VIPs)
	}
}

func TestDashboardPage(t *testing.T) {
	web := fakeNode(t, "web01", "web", []string{"192.168.1.10/24"}, running("web"))
	d := &Dashboard{Nodes: []string{web.URL}, Title: `lab <script>alert(1)</script>`}
	mux := http.NewServeMux()
	d.Mount(mux, "/lab")
	code, body := get(t, mux, "GET", "/lab/dashboard", "192.0.2.1:1")
	if code != 200 {
		t.Fatalf("GET /lab/dashboard = %d", code)
	}
	for _, want := range []string{`<script id="initial" type="application/json">`, `"name":"web01"`, "lab &lt;script&gt;", `fetch("dashboard.json"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Nothing from elsewhere: no src or href attributes, no title
	// unescaped.
	for _, bad := range []string{" src=", " href=", "<script>alert"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	code, body = get(t, mux, "GET", "/lab/dashboard.json", "192.0.2.1:1")
	var v ClusterView
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || len(v.Nodes) != 1 || !v.Nodes[0].Healthy {
		t.Errorf("GET /lab/dashboard.json = %d %v %+v", code, err, v)
	}
}

func TestNodeDashboard(t *testing.T) {
	lb := &overlays.Node{
		Hostname: "lbmaster", Role: overlays.RoleLBMaster,
		Interfaces: overlays.Interfaces{Eth0: &overlays.Interface{Address: netip.MustParsePrefix("192.168.1.14/24")}},
		Admin:      overlays.Admin{Port: 9100},
		VIP: &overlays.VIP{Address: netip.MustParsePrefix("192.168.1.15/24"), Peers: []netip.Addr{netip.MustParseAddr("192.168.1.12")},
			Routers: []overlays.VIP{{Address: netip.MustParsePrefix("192.168.1.16/24")}}},
		Balancer: &overlays.Balancer{Backends: []overlays.Backend{
			{Name: "web01", Address: "192.168.1.10:80"}, {Name: "web02", Address: "192.168.1.11:8080"},
			{Name: "again", Address: "192.168.1.10:81"}, {Name: "self", Address: "192.168.1.14:8080"},
		}},
	}
	d := NodeDashboard(&Server{Node: lb})
	if d == nil {
		t.Fatal("no dashboard on a load balancer")
	}
	want := "http://192.168.1.12:9100 http://192.168.1.10:9100 http://192.168.1.11:9100"
	if got := strings.Join(d.Nodes, " "); got != want {
		t.Errorf("nodes = %s, want %s", got, want)
	}
	if len(d.VIPs) != 2 {
		t.Errorf("VIPs = %v, want both routers' addresses", d.VIPs)
	}
	if NodeDashboard(&Server{Node: &overlays.Node{Hostname: "web01", Role: overlays.RoleWeb}}) != nil {
		t.Error("a web node has a dashboard")
	}
	// Mounted by Handler on load balancers only.
	webSrv := &Server{Node: &overlays.Node{Hostname: "web01", Role: overlays.RoleWeb}, Started: time.Unix(0, 0)}
	if code, _ := get(t, webSrv.Handler(), "GET", "/dashboard.json", "127.0.0.1:1"); code != http.StatusNotFound {
		t.Errorf("web node GET /dashboard.json = %d, want 404", code)
	}
	lbSrv := &Server{Node: &overlays.Node{Hostname: "lb", Role: overlays.RoleLBMaster}, Started: time.Unix(0, 0)}
	code, body := get(t, lbSrv.Handler(), "GET", "/dashboard.json", "127.0.0.1:1")
	if code != 200 || !strings.Contains(body, `"name": "lb"`) {
		t.Errorf("load balancer GET /dashboard.json = %d %s", code, body)
	}
}

// TestDashboardOverPlainHTTP: on a card, plain HTTP from other hosts
// serves only read-only routes; the dashboard is one of them on load
// balancers.
func TestDashboardOverPlainHTTP(t *testing.T) {
	h := testServer(&fakeServices{}).PlainHandler()
	for _, target := range []string{"/dashboard", "/dashboard.json"} {
		if code, body := get(t, h, "GET", target, "192.168.1.50:4000"); code != 200 {
			t.Errorf("GET %s from another host: %d %s", target, code, body)
		}
	}
	if code, _ := get(t, h, "POST", "/dashboard", "192.168.1.50:4000"); code == 200 {
		t.Error("POST /dashboard answered 200")
	}
}
