package node

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/admin"
)

// secretFiles lists the files holding the node's secrets: the admin
// credential's key and token hash under dataDir, the last good overlay
// (it holds the Wi-Fi PSK), and the private keys and mirror secret the
// overlay names.
func secretFiles(dataDir, lastGoodPath string, n *overlays.Node) []string {
	cred := filepath.Join(dataDir, admin.CredentialsDir)
	out := []string{
		filepath.Join(cred, admin.KeyFile),
		filepath.Join(cred, admin.TokenHashFile),
		lastGoodPath,
	}
	if b := n.Balancer; b != nil && b.TLS != nil {
		for _, c := range b.TLS.Certs {
			out = append(out, c.Key)
		}
	}
	if w := n.Web; w != nil && w.TLS != nil {
		out = append(out, w.TLS.Key)
	}
	if m := n.Mirror; m != nil {
		if m.TLS != nil {
			out = append(out, m.TLS.Key)
		} else {
			out = append(out, m.SecretFileOrDefault())
		}
	}
	return out
}

// protectSecrets makes every existing secret file a regular file of mode
// 0600 (read and write for root only) and returns the ones it changed.
// Symbolic links are left alone (their target may be anything).
func protectSecrets(files []string) (fixed []string, err error) {
	var errs []error
	seen := map[string]bool{}
	for _, f := range files {
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		fi, lerr := os.Lstat(f)
		if lerr != nil || !fi.Mode().IsRegular() {
			continue
		}
		if fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		if cerr := os.Chmod(f, 0o600); cerr != nil {
			errs = append(errs, &fs.PathError{Op: "chmod", Path: f, Err: cerr})
			continue
		}
		fixed = append(fixed, fmt.Sprintf("%s (was %04o)", f, fi.Mode().Perm()))
	}
	if len(errs) > 0 {
		return fixed, fmt.Errorf("protecting secret files: %v", errs)
	}
	return fixed, nil
}
