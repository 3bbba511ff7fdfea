package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/internal/netnstest"
	"github.com/piimage/piimage/services/balancer"
)

// secret is one secret value and a name for messages.
type secret struct{ name, value string }

// writeKeyPair writes a self-signed certificate and its private key and
// returns the paths and the key's base64 lines (the secret part).
func writeKeyPair(t *testing.T, dir, name string) (cert, key string, keyLines []string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{name}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(keyPEM), "\n") {
		if len(l) >= 16 && !strings.HasPrefix(l, "-----") {
			keyLines = append(keyLines, l)
		}
	}
	return cert, key, keyLines
}

func randomWord(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// TestSecretsNeverShown runs a load balancer and a web node in process mode
// with overlays that set every secret they can (Wi-Fi PSKs, the stats
// password, TLS keys, the mirror secret), uses every service and page
// (with right and wrong passwords), then greps every log line, console
// line and HTTP response for each secret.
func TestSecretsNeverShown(t *testing.T) {
	l := netnstest.NewLab(t, "sec")
	lbHost, webHost, mgmt := l.Add("lb", 0), l.Add("web", 0), l.Add("mgmt", 4)
	bin := buildInit(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")

	statsPass := randomWord("stats-")
	hash, err := balancer.HashPassword(statsPass)
	if err != nil {
		t.Fatal(err)
	}
	psk1, psk2 := randomWord("wifi-"), randomWord("wifi-")
	mirrorSecret := randomWord("mirror-")
	writeFile(t, filepath.Join(data, "mirror", "secret"), mirrorSecret)
	lbCert, lbKey, lbKeyLines := writeKeyPair(t, data, "seclb")
	webCert, webKey, webKeyLines := writeKeyPair(t, data, "secweb")
	www := filepath.Join(data, "www")
	writeFile(t, filepath.Join(www, "index.html"), "hello from secweb\n")

	secrets := []secret{{"wlan0 psk of the LB", psk1}, {"wlan0 psk of the web node", psk2},
		{"stats password", statsPass}, {"stats password hash", hash}, {"mirror secret", mirrorSecret}}
	for _, k := range lbKeyLines {
		secrets = append(secrets, secret{"balancer TLS key", k})
	}
	for _, k := range webKeyLines {
		secrets = append(secrets, secret{"web TLS key", k})
	}

	lbOv, webOv := filepath.Join(dir, "lb.yaml"), filepath.Join(dir, "web.yaml")
	writeFile(t, lbOv, labSub(l, fmt.Sprintf(`hostname: seclb
role: lbmaster
interfaces:
  eth0: {address: PFX.2/24, gateway: PFX.1}
  wlan0: {address: 10.251.0.2/24, ssid: lab, psk: %q}
vip: {router_id: 61, priority: 101, address: PFX.100/24, advert_interval: 1s}
balancer:
  port: 80
  backends: [{name: secweb, address: "PFX.3:80"}]
  check: {interval: 500ms}
  stats: {port: 1936, user: admin, password_hash: %q}
  tls: {port: 443, certs: [{cert: %s, key: %s}]}
firewall: {vrrp_peers: [PFX.9]}
`, psk1, hash, lbCert, lbKey)))
	writeFile(t, webOv, labSub(l, fmt.Sprintf(`hostname: secweb
role: web
interfaces:
  eth0: {address: PFX.3/24, gateway: PFX.1}
  wlan0: {address: 10.251.0.3/24, ssid: lab, psk: %q}
web: {root: %s, tls: {port: 443, cert: %s, key: %s}}
mirror: {primary: secweb, secret_file: %s}
`, psk2, www, webCert, webKey, filepath.Join(data, "mirror", "secret"))))

	lbState, webState := filepath.Join(dir, "lbstate"), filepath.Join(dir, "webstate")
	lb := startNode(t, lbHost.NS, bin, "--state", lbState, "--overlay", lbOv)
	web := startNode(t, webHost.NS, bin, "--state", webState, "--overlay", webOv)
	lb.waitOutput(t, "seclb up")
	web.waitOutput(t, "secweb up")

	var seen strings.Builder
	record := func(what string, code int, body string, h http.Header) {
		fmt.Fprintf(&seen, "=== %s: %d\n", what, code)
		for k, v := range h {
			fmt.Fprintf(&seen, "%s: %s\n", k, strings.Join(v, ", "))
		}
		seen.WriteString(body + "\n")
	}
	c := clientIn(mgmt.NS, 3*time.Second)
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	do := func(what, method, url, user, pass string) int {
		req, _ := http.NewRequest(method, url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			fmt.Fprintf(&seen, "=== %s: %v\n", what, err)
			return 0
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		record(what, resp.StatusCode, string(b), resp.Header)
		return resp.StatusCode
	}
	// Wait for the balancer to reach the web node, then use everything.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if do("balancer", "GET", labSub(l, "http://PFX.2/"), "", "") == 200 {
			break
		}
	}
	for _, u := range []struct{ what, url, user, pass string }{
		{"balancer TLS", "https://PFX.2/", "", ""},
		{"web", "http://PFX.3/", "", ""},
		{"web TLS", "https://PFX.3/", "", ""},
		{"stats, no password", "http://PFX.2:1936/", "", ""},
		{"stats, wrong password", "http://PFX.2:1936/", "admin", "not-" + statsPass},
		{"lb status", "http://PFX.2:9000/status", "", ""},
		{"lb health", "http://PFX.2:9000/health", "", ""},
		{"lb dashboard", "http://PFX.2:9000/dashboard", "", ""},
		{"lb dashboard.json", "http://PFX.2:9000/dashboard.json", "", ""},
		{"web status", "http://PFX.3:9000/status", "", ""},
		{"web dashboard.json", "http://PFX.3:9000/dashboard.json", "", ""},
	} {
		do(u.what, "GET", labSub(l, u.url), u.user, u.pass)
	}
	// The balancer evaluates a password at most every 100ms.
	for i := 0; i < 10 && do("stats", "GET", labSub(l, "http://PFX.2:1936/"), "admin", statsPass) != 200; i++ {
		time.Sleep(200 * time.Millisecond)
	}
	do("metrics", "GET", labSub(l, "http://PFX.2:1936/metrics"), "admin", statsPass)
	for _, node := range []string{"PFX.2", "PFX.3"} {
		for _, svc := range []string{"init", "balancer", "vip", "web", "mirror"} {
			do("logs "+svc, "GET", labSub(l, "http://"+node+":9000/logs?service="+svc), "", "")
		}
	}
	if !strings.Contains(seen.String(), "=== stats: 200") || !strings.Contains(seen.String(), "=== web TLS: 200") ||
		!strings.Contains(seen.String(), "=== balancer TLS: 200") || !strings.Contains(seen.String(), "=== stats, wrong password: 401") {
		t.Errorf("not every page was reached:\n%s", seen.String())
	}
	if err := lb.stop(); err != nil {
		t.Errorf("stopping the LB: %v", err)
	}
	if err := web.stop(); err != nil {
		t.Errorf("stopping the web node: %v", err)
	}
	seen.WriteString("=== LB console\n" + lb.output())
	seen.WriteString("=== web console\n" + web.output())
	for _, state := range []string{lbState, webState} {
		b, err := os.ReadFile(filepath.Join(state, "logs", "init.log"))
		if err != nil {
			t.Error(err)
		}
		seen.WriteString("=== " + state + "/logs/init.log\n" + string(b))
		// The last good overlay holds the PSK: root only.
		if fi, err := os.Stat(filepath.Join(state, "last-good.yaml")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s/last-good.yaml: %v, want mode 0600", state, err)
		}
	}

	all := seen.String()
	for _, s := range secrets {
		if i := strings.Index(all, s.value); i >= 0 {
			t.Errorf("the %s shows: ...%s...", s.name, all[max(0, i-200):min(len(all), i+len(s.value)+50)])
		}
	}
	if testing.Verbose() {
		t.Logf("checked %d bytes of logs and responses for %d secrets", len(all), len(secrets))
	}
}
