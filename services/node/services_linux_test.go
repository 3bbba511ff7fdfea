package node

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWebNodeServesItsRoot runs the real init (with every service the
// image has) as an ordinary process in a network namespace with a web
// overlay, and fetches pages from a client namespace: the web service is
// started by the supervisor as a child process and serves the web root.
func TestWebNodeServesItsRoot(t *testing.T) {
	dir, bin := buildInitForNetns(t)
	www := filepath.Join(dir, "www")
	writeFile(t, filepath.Join(www, "index.html"), "<h1>hello from the web root</h1>\n")
	writeFile(t, filepath.Join(www, ".secret"), "hidden\n")
	nodeNS, clientNS := newNetnsPair(t)
	ov := filepath.Join(dir, "node.yaml")
	writeFile(t, ov, `hostname: web-itest
role: web
interfaces:
  eth0:
    address: 10.77.0.2/24
    gateway: 10.77.0.1
web:
  root: `+www+`
`)
	n := startNode(t, nodeNS, bin, "--state", filepath.Join(dir, "state"), "--overlay", ov)
	n.waitOutput(t, "piimage: web-itest up")
	client := clientIn(clientNS, 3*time.Second)

	get := func(path string) (int, string, error) {
		resp, err := client.Get("http://10.77.0.2" + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	// The supervisor starts the web service after the network is up; give
	// it a bounded time to listen.
	var code int
	var body string
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if code, body, err = get("/"); err == nil {
			break
		}
	}
	if err != nil || code != 200 || !strings.Contains(body, "hello from the web root") {
		t.Fatalf("GET / = %d %q, %v\nnode output:\n%s", code, body, err, n.output())
	}
	if code, body, _ := get("/whoami"); code != 200 || !strings.Contains(body, "web-itest") {
		t.Errorf("GET /whoami = %d %q, want the hostname", code, body)
	}
	if code, _, _ := get("/.secret"); code != 404 {
		t.Errorf("GET /.secret = %d, want 404", code)
	}
	if code, _, _ := get("/../../etc/passwd"); code == 200 {
		t.Errorf("GET /../../etc/passwd = 200")
	}
	st := clientStatus(t, client)
	found := false
	for _, s := range st.Services {
		if s.Name == "web" {
			found = true
			if s.State != "running" {
				t.Errorf("web service state %q, want running", s.State)
			}
		}
	}
	if !found {
		t.Errorf("status lists no web service: %+v", st.Services)
	}
}
