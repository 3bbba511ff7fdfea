package admin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/services/ota"
)

// credentials makes a cluster credential and the node's copy of it.
func credentials(t *testing.T) (*ClusterCredential, *Credentials) {
	t.Helper()
	cc, err := NewClusterCredential()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range cc.NodeFiles() {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cc, c
}

// serveSplit serves s (and o) on a loopback port and returns its address.
func serveSplit(t *testing.T, s *Server, c *Credentials, o *OTA) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeSplit(ctx, []net.Listener{ln}, c.TLSConfig(), s.SecureHandler(c, o), s.PlainHandler())
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeSplit: %v", err)
		}
	})
	return ln.Addr().String()
}

func tlsClient(pin, token string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &tokenTransport{token: token, rt: &http.Transport{
			TLSClientConfig: ClientTLSConfig(pin), DisableKeepAlives: true,
		}},
	}
}

type tokenTransport struct {
	token string
	rt    http.RoundTripper
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.token != "" {
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	return t.rt.RoundTrip(r)
}

func status(t *testing.T, c *http.Client, method, url string, body io.Reader) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSplitPlainAndTLS(t *testing.T) {
	cc, c := credentials(t)
	pin, err := cc.Pin()
	if err != nil {
		t.Fatal(err)
	}
	addr := serveSplit(t, testServer(&fakeServices{}), c, nil)
	plain := &http.Client{Timeout: 5 * time.Second}
	other, _ := NewClusterCredential()
	otherPin, _ := other.Pin()

	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		code   int
		want   string
	}{
		{"plain status", plain, "http://" + addr + "/status", 200, `"hostname": "lb1"`},
		{"plain logs from the node itself", plain, "http://" + addr + "/logs?service=init", 200, "lb1 up"},
		{"tls status", tlsClient(pin, cc.Token), "https://" + addr + "/status", 200, `"hostname": "lb1"`},
		{"tls logs", tlsClient(pin, cc.Token), "https://" + addr + "/logs?service=init", 200, "lb1 up"},
		{"tls without token", tlsClient(pin, ""), "https://" + addr + "/status", 401, "cluster's token"},
		{"tls wrong token", tlsClient(pin, other.Token), "https://" + addr + "/status", 401, "cluster's token"},
		{"tls wrong pin", tlsClient(otherPin, cc.Token), "https://" + addr + "/status", 0, "is not the cluster's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := status(t, tc.client, "GET", tc.url, nil)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("%d %q, want %d with %q", code, body, tc.code, tc.want)
			}
		})
	}
	// A client that pins the right key but offers only TLS 1.2 is refused.
	cfg := ClientTLSConfig(pin)
	cfg.MaxVersion = tls.VersionTLS12
	conn, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		conn.Close()
		t.Error("TLS 1.2 accepted")
	}
}

func TestPlainHandlerFromOtherHosts(t *testing.T) {
	h := testServer(&fakeServices{}).PlainHandler()
	for _, tc := range []struct {
		method, target string
		code           int
	}{
		{"GET", "/status", 200},
		{"GET", "/health", 200},
		{"GET", "/logs?service=init", 403},
		{"POST", "/reboot", 403},
		{"POST", "/ota/update", 403},
	} {
		if code, body := get(t, h, tc.method, tc.target, "192.168.1.50:4000"); code != tc.code {
			t.Errorf("%s %s from another host: %d %s, want %d", tc.method, tc.target, code, body, tc.code)
		}
	}
}

// otaNode is a node's boot folder and root partitions on disk, with slot
// a running.
type otaNode struct {
	boot  string
	roots map[string]string
	agent *ota.Agent
}

func newOTANode(t *testing.T, key ed25519.PrivateKey) *otaNode {
	t.Helper()
	dir := t.TempDir()
	n := &otaNode{boot: filepath.Join(dir, "boot"), roots: map[string]string{}}
	os.MkdirAll(filepath.Join(n.boot, "slot-a"), 0o755)
	os.WriteFile(filepath.Join(n.boot, "config.txt"), []byte("os_prefix=slot-a/\n"), 0o644)
	os.WriteFile(filepath.Join(n.boot, "tryboot.txt"), []byte("os_prefix=slot-a/\n"), 0o644)
	for _, s := range []string{"a", "b"} {
		n.roots[s] = filepath.Join(dir, "root-"+s)
		os.WriteFile(n.roots[s], make([]byte, 64<<10), 0o644)
	}
	d, err := ota.NewOSDir(n.boot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	n.agent = &ota.Agent{
		Boot: d, Board: "pi3", Booted: "a", DiskID: 0x01020304,
		Keys: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)},
		Root: func(slot string) (ota.Device, error) { return ota.OpenFileDevice(n.roots[slot]) },
		Log:  slog.New(slog.DiscardHandler),
	}
	return n
}

func testPayload(t *testing.T, key ed25519.PrivateKey, version string) []byte {
	t.Helper()
	root := bytes.Repeat([]byte(version), 1000)
	kernel := []byte("kernel " + version)
	m := &imgota.Manifest{
		Format: imgota.Format, Board: "pi3", Version: version,
		Root:      imgota.Part{Size: int64(len(root)), SHA256: sha256.Sum256(root)},
		Files:     []imgota.File{{Path: "vmlinuz", Size: int64(len(kernel)), SHA256: sha256.Sum256(kernel)}},
		ConfigTxt: "os_prefix=slot-a/\n", Cmdline: "root=PARTUUID=00000001-02 ro",
	}
	mb, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := imgota.NewWriter(&buf, mb, imgota.Sign(key, mb))
	if err != nil {
		t.Fatal(err)
	}
	w.Inline(bytes.NewReader(root))
	w.Inline(bytes.NewReader(kernel))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestOTAOverTLS(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	n := newOTANode(t, key)
	cc, c := credentials(t)
	pin, _ := cc.Pin()
	updated := make(chan *ota.Result, 1)
	addr := serveSplit(t, testServer(&fakeServices{}), c, &OTA{Agent: n.agent, Updated: func(r *ota.Result) { updated <- r }, Log: slog.New(slog.DiscardHandler)})
	cl := tlsClient(pin, cc.Token)
	base := "https://" + addr

	// Without the token, nothing.
	if code, _ := status(t, tlsClient(pin, ""), "POST", base+"/ota/update", bytes.NewReader(testPayload(t, key, "v2"))); code != 401 {
		t.Errorf("upload without a token: %d", code)
	}
	// Over plain HTTP from elsewhere there is no upload route, and over
	// plain HTTP from the node itself there is none either.
	if code, _ := status(t, &http.Client{}, "POST", "http://"+addr+"/ota/update", bytes.NewReader(testPayload(t, key, "v2"))); code != 404 && code != 405 {
		t.Errorf("plain upload: %d", code)
	}
	// Signed by another key: refused, nothing written.
	code, body := status(t, cl, "POST", base+"/ota/update", bytes.NewReader(testPayload(t, other, "v2")))
	var ue UpdateError
	json.Unmarshal([]byte(body), &ue)
	if code != http.StatusUnprocessableEntity || !ue.Refused || !strings.Contains(ue.Error, "not signed by a key this node trusts") {
		t.Errorf("wrongly signed: %d %s", code, body)
	}
	if ents, _ := os.ReadDir(filepath.Join(n.boot, "slot-b")); len(ents) != 0 {
		t.Errorf("a refused update wrote slot-b: %v", ents)
	}
	// Signed right: written, trial armed, the hook called.
	code, body = status(t, cl, "POST", base+"/ota/update", bytes.NewReader(testPayload(t, key, "v2")))
	var res ota.Result
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || res.Slot != "b" || res.Version != "v2" {
		t.Fatalf("update: %d %s", code, body)
	}
	select {
	case r := <-updated:
		if r.ID != res.ID {
			t.Errorf("hook got %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Error("the Updated hook was not called")
	}
	code, body = status(t, cl, "GET", base+"/ota", nil)
	var st ota.Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Trial == nil || st.Trial.Slot != "b" || !st.Slots[1].Config {
		t.Errorf("GET /ota: %d %s", code, body)
	}
	code, body = status(t, cl, "GET", base+"/ota/have", nil)
	if code != 200 || !strings.Contains(body, fmt.Sprintf("%x", sha256.Sum256([]byte("kernel v2")))) {
		t.Errorf("GET /ota/have: %d %s", code, body)
	}
	// A second update during the trial is refused.
	code, body = status(t, cl, "POST", base+"/ota/update", bytes.NewReader(testPayload(t, key, "v3")))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "on trial") {
		t.Errorf("update during a trial: %d %s", code, body)
	}
}

func TestLoadCredentialsErrors(t *testing.T) {
	if _, err := LoadCredentials(t.TempDir()); err == nil {
		t.Error("an empty folder loaded")
	}
	cc, _ := NewClusterCredential()
	dir := t.TempDir()
	for name, data := range cc.NodeFiles() {
		os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
	os.WriteFile(filepath.Join(dir, TokenHashFile), []byte("abc\n"), 0o600)
	if _, err := LoadCredentials(dir); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("bad token hash: %v", err)
	}
	if strings.Contains(string(cc.NodeFiles()[TokenHashFile]), cc.Token) {
		t.Error("the node's files hold the token itself")
	}
}
