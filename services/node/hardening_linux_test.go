package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/piimage/piimage/internal/netnstest"
	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/timesync"
)

// sntpServer answers SNTP requests in host h on its address, port 123,
// with the real time.
func sntpServer(t *testing.T, h *netnstest.Host) {
	var pc net.PacketConn
	err := h.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", h.Addr+":123")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := timesync.Parse(buf[:n])
			if err != nil {
				continue
			}
			now := timesync.TimestampOf(time.Now())
			reply := timesync.Packet{Version: 4, Mode: timesync.ModeServer, Stratum: 1, RefID: [4]byte{'T', 'E', 'S', 'T'},
				OrigTime: req.XmitTime, RecvTime: now, XmitTime: now, RefTime: now}
			pc.WriteTo(reply.Marshal(), from)
		}
	}()
}

// statusFrom reads /status from namespace h, retrying for up to 10 s.
func statusFrom(t *testing.T, h *netnstest.NS, url string) admin.Status {
	t.Helper()
	c := clientIn(h, 3*time.Second)
	var lastErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := c.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		var st admin.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil {
			return st
		}
		lastErr = err
	}
	t.Fatalf("GET %s from %s: %v", url, h.Name, lastErr)
	return admin.Status{}
}

// TestHardenedNode runs the init in process mode as a web node with a
// management host, a stranger and a gateway that answers SNTP: the
// firewall is installed (web port open to all, admin port to the
// management host only), /status shows its counters and a trusted time,
// and the web service's process runs with CAP_NET_BIND_SERVICE alone and
// no_new_privs.
func TestHardenedNode(t *testing.T) {
	l := netnstest.NewLab(t, "hard")
	node, gw, mgmt, stranger := l.Add("node", 0), l.Add("gw", 1), l.Add("mgmt", 4), l.Add("stranger", 5)
	bin := buildInit(t)
	sntpServer(t, gw)
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	writeFile(t, filepath.Join(www, "index.html"), "hello\n")
	ov := filepath.Join(dir, "node.yaml")
	writeFile(t, ov, labSub(l, `hostname: hard1
role: web
interfaces:
  eth0: {address: PFX.2/24, gateway: PFX.1}
web: {root: `+www+`}
firewall: {admin_from: [PFX.4/32]}
time: {servers: ["PFX.1:123"], interval: 1m}
`))
	n := startNode(t, node.NS, bin, "--state", filepath.Join(dir, "state"), "--overlay", ov)
	n.waitOutput(t, "hard1 up")
	if !strings.Contains(n.output(), "firewall installed (nftables table inet piimage); public TCP ports: 80") {
		t.Errorf("the console does not report the firewall:\n%s", n.output())
	}

	web := clientIn(stranger.NS, 3*time.Second)
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var code int
		if code, _, err = getBody(web, labSub(l, "http://PFX.2/")); err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("the web port from a stranger: %v\n%s", err, n.output())
	}
	// The admin port is closed to the stranger: dropped, so a timeout.
	var c net.Conn
	err = stranger.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", labSub(l, "PFX.2:9000"), 700*time.Millisecond)
		return err
	})
	if err == nil {
		c.Close()
		t.Error("the stranger reached the admin port")
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("the stranger's admin connection: %v, want a timeout", err)
	}

	var st admin.Status
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		st = statusFrom(t, mgmt.NS, labSub(l, "http://PFX.2:9000/status"))
		if st.Time != nil && st.Time.Trusted {
			break
		}
	}
	if st.Firewall == nil || !st.Firewall.Installed || st.Firewall.Error != "" {
		t.Fatalf("firewall status %+v", st.Firewall)
	}
	if st.Firewall.Counters["dropped"].Packets == 0 || st.Firewall.Counters["admin"].Packets == 0 || st.Firewall.Counters["public"].Packets == 0 {
		t.Errorf("counters %+v: want drops (the stranger's admin SYNs), admin and public connections", st.Firewall.Counters)
	}
	if st.Time == nil || !st.Time.Trusted || st.Time.Settable || st.Time.Server != labSub(l, "PFX.1:123") {
		t.Errorf("time status %+v: want trusted from PFX.1:123, not settable in process mode", st.Time)
	}

	var pid int
	for _, s := range st.Services {
		if s.Name == "web" {
			pid = s.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no web service pid in %+v", st.Services)
	}
	caps := procStatus(t, pid)
	want := fmt.Sprintf("%016x", uint64(1)<<unix.CAP_NET_BIND_SERVICE)
	for _, k := range []string{"CapBnd", "CapEff", "CapPrm"} {
		if caps[k] != want {
			t.Errorf("web service %s = %s, want %s (CAP_NET_BIND_SERVICE only)", k, caps[k], want)
		}
	}
	if caps["CapInh"] != "0000000000000000" || caps["CapAmb"] != "0000000000000000" || caps["NoNewPrivs"] != "1" {
		t.Errorf("web service CapInh %s CapAmb %s NoNewPrivs %s; want 0, 0, 1", caps["CapInh"], caps["CapAmb"], caps["NoNewPrivs"])
	}
	if err := n.stop(); err != nil {
		t.Errorf("stopping: %v\n%s", err, n.output())
	}
}

// getBody GETs url and returns the status and body.
func getBody(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// procStatus reads the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}
