package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/piimage/piimage/overlays"
)

func TestProtectSecrets(t *testing.T) {
	data := t.TempDir()
	mk := func(rel string, mode os.FileMode) string {
		p := filepath.Join(data, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("secret"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	adminKey := mk("piimage/admin/tls.key", 0o644)
	token := mk("piimage/admin/token.sha256", 0o600)
	lastGood := mk("piimage/last-good.yaml", 0o640)
	webKey := mk("tls/web.key", 0o666)
	mirror := mk("mirror/secret", 0o604)
	public := mk("tls/web.pem", 0o644)
	link := filepath.Join(data, "tls/link.key")
	if err := os.Symlink(public, link); err != nil {
		t.Fatal(err)
	}
	src := `hostname: web01
role: web
interfaces: {eth0: {address: 10.0.0.2/24}}
web: {tls: {cert: ` + public + `, key: ` + webKey + `}}
mirror: {primary: web01, secret_file: ` + mirror + `}
`
	n, err := overlays.Parse("n.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	files := append(secretFiles(data, lastGood, n), link, filepath.Join(data, "missing.key"))
	fixed, err := protectSecrets(files)
	if err != nil {
		t.Fatal(err)
	}
	if len(fixed) != 4 {
		t.Errorf("fixed %q; want the admin key, last good overlay, web key and mirror secret", fixed)
	}
	for _, p := range []string{adminKey, token, lastGood, webKey, mirror} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", p, fi.Mode().Perm(), err)
		}
	}
	// Certificates and the target of a symbolic link are not secrets.
	if fi, _ := os.Stat(public); fi.Mode().Perm() != 0o644 {
		t.Errorf("the certificate's mode changed to %v", fi.Mode().Perm())
	}
	if !strings.Contains(strings.Join(fixed, " "), "(was 0666)") {
		t.Errorf("fixed = %q lacks the old mode", fixed)
	}
}
