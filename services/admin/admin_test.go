package admin

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/supervise"
	"github.com/piimage/piimage/services/wifi"
)

type fakeServices struct {
	status []supervise.Status
	logs   map[string][]string
}

func (f *fakeServices) Status() []supervise.Status { return f.status }
func (f *fakeServices) Logs(name string) ([]string, bool) {
	l, ok := f.logs[name]
	return l, ok
}

func testNode() *overlays.Node {
	return &overlays.Node{
		Hostname: "lb1", Role: "lbmaster",
		Interfaces: overlays.Interfaces{Eth0: &overlays.Interface{Address: netip.MustParsePrefix("192.168.1.11/24")}},
		VIP: &overlays.VIP{Address: netip.MustParsePrefix("192.168.1.10/24"),
			Routers: []overlays.VIP{{Address: netip.MustParsePrefix("192.168.1.20/24")}}},
	}
}

func testServer(svcs *fakeServices) *Server {
	start := time.Unix(1000, 0)
	ring := supervise.NewRing(10, nil)
	io.WriteString(ring, "piimage: lb1 up\n")
	return &Server{
		Node:     testNode(),
		Release:  Release{Version: "v0.1.0", Board: "pi3"},
		Slot:     "b",
		Overlay:  OverlayInfo{Source: SourceLastGood, Path: "/data/piimage/last-good.yaml", FallbackReason: "/boot/node.yaml: line 3: bad"},
		Started:  start,
		Now:      func() time.Time { return start.Add(90 * time.Second) },
		Services: svcs,
		InitLog:  ring,
		Addresses: func() []Address {
			return []Address{{Interface: "eth0", Address: "192.168.1.11/24"}}
		},
	}
}

func get(t *testing.T, h http.Handler, method, target, remote string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestStatus(t *testing.T) {
	svcs := &fakeServices{status: []supervise.Status{
		{Name: "balancer", State: "running", PID: 42, Health: "ok"},
		{Name: "vip", State: "backoff", Restarts: 3, LastExit: "exit status 1", Health: "not running"},
	}}
	srv := httptest.NewServer(testServer(svcs).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	want := `{"addresses":[{"address":"192.168.1.11/24","interface":"eth0"}],"board":"pi3","hostname":"lb1",` +
		`"overlay":{"fallback_reason":"/boot/node.yaml: line 3: bad","path":"/data/piimage/last-good.yaml","source":"last-good"},` +
		`"role":"lbmaster","services":[{"health":"ok","last_exit":"","name":"balancer","pid":42,"restarts":0,"state":"running"},` +
		`{"health":"not running","last_exit":"exit status 1","name":"vip","pid":0,"restarts":3,"state":"backoff"}],` +
		`"slot":"b","uptime_seconds":90,"version":"v0.1.0"}`
	if string(b) != want {
		t.Errorf("status:\n%s\nwant:\n%s", b, want)
	}
}

func TestStatusDefaults(t *testing.T) {
	s := &Server{Node: testNode()}
	st := s.Snapshot()
	if st.Board != overlays.DefaultBoard || st.Services == nil || st.Addresses == nil {
		t.Errorf("Snapshot of a bare server = %+v; want the default board and empty lists", st)
	}
}

func TestRoutes(t *testing.T) {
	healthy := &fakeServices{
		status: []supervise.Status{{Name: "web", State: "running", Health: "ok"}},
		logs:   map[string][]string{"web": {"GET / 200", "GET /x 404"}},
	}
	sick := &fakeServices{status: []supervise.Status{
		{Name: "web", State: "running", Health: "ok"},
		{Name: "mirror", State: "running", Health: "unhealthy: primary unreachable"},
	}}
	tests := []struct {
		name     string
		svcs     *fakeServices
		method   string
		target   string
		remote   string
		wantCode int
		wantBody string
	}{
		{"logs of a service", healthy, "GET", "/logs?service=web", "", 200, "GET / 200\nGET /x 404\n"},
		{"logs of the init", healthy, "GET", "/logs?service=init", "", 200, "piimage: lb1 up\n"},
		{"logs of nothing", healthy, "GET", "/logs?service=nope", "", 404, "no logs for service \"nope\"; known: init, web\n"},
		{"logs without a name", healthy, "GET", "/logs", "", 400, "no logs for service \"\"; known: init, web\n"},
		{"healthy", healthy, "GET", "/health", "", 200, "ok\n"},
		{"no services is healthy", &fakeServices{}, "GET", "/health", "", 200, "ok\n"},
		{"unhealthy", sick, "GET", "/health", "", 503, "mirror: running (unhealthy: primary unreachable)\n"},
		{"status is GET only", healthy, "POST", "/status", "", 405, ""},
		{"reboot from the LAN refused", healthy, "POST", "/reboot", "192.168.1.50:4000", 403, ""},
		{"reboot from the node", healthy, "POST", "/reboot", "127.0.0.1:4000", 202, "rebooting\n"},
		{"poweroff from the node", healthy, "POST", "/reboot?poweroff=1", "127.0.0.1:4000", 202, "powering off\n"},
		{"unknown path", healthy, "GET", "/nope", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(tt.svcs)
			rebooted := make(chan bool, 1)
			s.Reboot = func(poweroff bool) { rebooted <- poweroff }
			code, body := get(t, s.Handler(), tt.method, tt.target, tt.remote)
			if code != tt.wantCode || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.target, code, body, tt.wantCode, tt.wantBody)
			}
			if code == 202 {
				select {
				case p := <-rebooted:
					if p != strings.Contains(tt.target, "poweroff") {
						t.Errorf("Reboot(poweroff=%v)", p)
					}
				case <-time.After(5 * time.Second):
					t.Error("Reboot was not called")
				}
			}
		})
	}
}

func TestRebootUnset(t *testing.T) {
	s := testServer(&fakeServices{})
	if code, _ := get(t, s.Handler(), "POST", "/reboot", "127.0.0.1:1"); code != 404 {
		t.Errorf("POST /reboot without Reboot = %d, want 404", code)
	}
}

func TestMiddleware(t *testing.T) {
	s := testServer(&fakeServices{})
	s.Middleware = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	if code, _ := get(t, s.Handler(), "GET", "/status", ""); code != 401 {
		t.Errorf("GET /status through a refusing middleware = %d, want 401", code)
	}
}

func TestCheckAddr(t *testing.T) {
	n := testNode()
	tests := []struct {
		addr    string
		wantErr string
	}{
		{"127.0.0.1:9000", ""},
		{"192.168.1.11:9000", ""},
		{"0.0.0.0:9000", "wildcard"},
		{":9000", "IP address"},
		{"[::]:9000", "wildcard"},
		{"192.168.1.10:9000", "VIP"},
		{"192.168.1.20:9000", "VIP"},
		{"localhost:9000", "IP address"},
		{"192.168.1.11", "missing port"},
	}
	for _, tt := range tests {
		err := CheckAddr(tt.addr, n)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("CheckAddr(%q) = %v, want %q", tt.addr, err, tt.wantErr)
		}
	}
	for _, with := range []bool{false, true} {
		for _, a := range ListenAddrs(n, with) {
			if err := CheckAddr(a, n); err != nil {
				t.Errorf("ListenAddrs gave %q: %v", a, err)
			}
		}
	}
	if got := strings.Join(ListenAddrs(n, true), " "); got != "127.0.0.1:9000 192.168.1.11:9000" {
		t.Errorf("ListenAddrs = %s", got)
	}
}

func TestServeAndListen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := testServer(&fakeServices{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, []net.Listener{ln}) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /health = %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
}

func TestStatusDataAndWiFi(t *testing.T) {
	s := testServer(&fakeServices{})
	if st := s.Snapshot(); st.Data != nil || st.WiFi != nil {
		t.Fatalf("unset data and Wi-Fi reported: %+v %+v", st.Data, st.WiFi)
	}
	s.Data = &DataStatus{Summary: "data partition mmcblk0p4: the kernel recorded 2 file system errors; e2fsck -f -p: errors corrected; mounted", Checked: true, Repaired: true, Mounted: true}
	sig := -52
	s.WiFi = func() *wifi.Status {
		return &wifi.Status{Interface: "wlan0", SSID: "cluster", Security: "wpa2-psk", State: "connected", Connected: true, SignalDBM: &sig}
	}
	code, body := get(t, s.Handler(), "GET", "/status", "127.0.0.1:5000")
	if code != 200 {
		t.Fatalf("/status: %d %s", code, body)
	}
	for _, want := range []string{`"repaired": true`, `errors corrected`, `"ssid": "cluster"`, `"signal_dbm": -52`, `"connected": true`} {
		if !strings.Contains(body, want) {
			t.Errorf("/status lacks %s:\n%s", want, body)
		}
	}
}
