package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/services/admin"
)

// A cluster's keys live in one folder on the build machine (default
// .keys/ in the source tree, which holds a .gitignore of "*" so git never
// sees them):
//
//	ota.key      ed25519 signing key, PKCS #8 PEM, 0600 (secret)
//	ota.pub      its public key, PKIX PEM: baked into every image's root
//	admin.token  the admin API's bearer token, 0600 (secret)
//	admin.crt    the admin API's TLS certificate: clients pin its key
//	admin.key    its private key, 0600 (secret): copied onto every image's
//	             data partition with the certificate and the token's hash
const (
	keyFile        = "ota.key"
	pubFile        = "ota.pub"
	tokenFile      = "admin.token"
	adminCertFile  = "admin.crt"
	adminKeyFile   = "admin.key"
	defaultKeysDir = ".keys"
)

func keygenCommand() command {
	return command{
		name:  "keygen",
		short: "make a cluster's update signing key and admin credential (--keys DIR)",
		run:   runKeygen,
	}
}

func runKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("keygen", "keygen [--keys DIR]", stderr)
	dir := fset.String("keys", "", "folder for the keys (default: .keys in the source tree)")
	src := fset.String("src", "", "piimage source tree (default: found from the current folder)")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return &usageError{"keygen: no arguments; use --keys DIR"}
	}
	d, err := keysDir(*dir, *src)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(d, keyFile)); err == nil {
		return fmt.Errorf("%s already exists: keygen never replaces a key (nodes built with it accept only updates it signs); move it away first", filepath.Join(d, keyFile))
	}
	k, err := ensureKeys(d, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signing key %s (key id %s), public key %s\n", filepath.Join(d, keyFile), imgota.KeyID(k.pub()), filepath.Join(d, pubFile))
	return nil
}

// keysDir returns dir, or .keys in the source tree (or the current
// folder outside it).
func keysDir(dir, src string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	s, err := findSource(src)
	if err != nil {
		if src != "" {
			return "", err
		}
		return defaultKeysDir, nil
	}
	return filepath.Join(s, defaultKeysDir), nil
}

// clusterKeys are a cluster's keys, read from their folder.
type clusterKeys struct {
	dir    string
	priv   ed25519.PrivateKey
	pubPEM []byte
	cred   *admin.ClusterCredential
}

func (k *clusterKeys) pub() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// buildKeys returns the keys a build uses: the signing key keyPath with
// the admin credential of its folder (made when missing), or, without
// keyPath, the keys folder of the source tree, made on first use.
func buildKeys(keyPath, src string, w io.Writer) (*clusterKeys, error) {
	if keyPath == "" {
		dir, err := keysDir("", src)
		if err != nil {
			return nil, err
		}
		return ensureKeys(dir, w)
	}
	if _, err := os.Stat(keyPath); err != nil {
		return nil, fmt.Errorf("--key: %w (make one with piimage keygen)", err)
	}
	dir := filepath.Dir(keyPath)
	if err := ensureCredential(dir, w); err != nil {
		return nil, err
	}
	b, err := readSecret(keyPath)
	if err != nil {
		return nil, err
	}
	priv, err := imgota.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	cred, err := loadCredential(dir)
	if err != nil {
		return nil, err
	}
	if len(cred.KeyPEM) == 0 {
		return nil, fmt.Errorf("%s is missing: images need the admin TLS key", filepath.Join(dir, adminKeyFile))
	}
	k := &clusterKeys{dir: dir, priv: priv, cred: cred}
	k.pubPEM = imgota.MarshalPublicKey(k.pub())
	return k, nil
}

// ensureKeys reads the keys in dir, making whatever is missing (and
// saying so on w).
func ensureKeys(dir string, w io.Writer) (*clusterKeys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the keys folder: %w", err)
	}
	ignore := filepath.Join(dir, ".gitignore")
	if _, err := os.Stat(ignore); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(ignore, []byte("# piimage cluster keys: never commit them.\n*\n"), 0o644); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, keyFile)); errors.Is(err, fs.ErrNotExist) {
		pubPEM, privPEM, err := imgota.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		switch err := writeSecret(filepath.Join(dir, keyFile), privPEM); {
		case errors.Is(err, fs.ErrExist):
			// Another build made it a moment ago: use theirs.
			return loadKeys(dir)
		case err != nil:
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, pubFile), pubPEM, 0o644); err != nil {
			return nil, err
		}
		fmt.Fprintf(w, "created an update signing key in %s (kept out of git); images built with it accept only updates it signs: keep it safe\n", dir)
	}
	if err := ensureCredential(dir, w); err != nil {
		return nil, err
	}
	return loadKeys(dir)
}

// ensureCredential makes the admin credential of dir when it is missing.
func ensureCredential(dir string, w io.Writer) error {
	if _, err := os.Stat(filepath.Join(dir, tokenFile)); errors.Is(err, fs.ErrNotExist) {
		c, err := admin.NewClusterCredential()
		if err != nil {
			return err
		}
		switch err := writeSecret(filepath.Join(dir, adminKeyFile), c.KeyPEM); {
		case errors.Is(err, fs.ErrExist):
			return nil // another build is making it
		case err != nil:
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, adminCertFile), c.CertPEM, 0o644); err != nil {
			return err
		}
		if err := writeSecret(filepath.Join(dir, tokenFile), []byte(c.Token+"\n")); err != nil {
			return err
		}
		fmt.Fprintf(w, "created the cluster's admin API credential in %s (token and TLS certificate)\n", dir)
	}
	return nil
}

// writeSecret creates a 0600 file that must not exist yet.
func writeSecret(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadKeys reads every key of dir.
func loadKeys(dir string) (*clusterKeys, error) {
	k := &clusterKeys{dir: dir}
	b, err := readSecret(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, err
	}
	if k.priv, err = imgota.ParsePrivateKey(b); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, keyFile), err)
	}
	k.pubPEM = imgota.MarshalPublicKey(k.pub())
	cred, err := loadCredential(dir)
	if err != nil {
		return nil, err
	}
	if len(cred.KeyPEM) == 0 {
		return nil, fmt.Errorf("%s is missing: images need the admin TLS key", filepath.Join(dir, adminKeyFile))
	}
	k.cred = cred
	return k, nil
}

// loadCredential reads the admin credential of dir.
func loadCredential(dir string) (*admin.ClusterCredential, error) {
	tok, err := readSecret(filepath.Join(dir, tokenFile))
	if err != nil {
		return nil, err
	}
	cert, err := os.ReadFile(filepath.Join(dir, adminCertFile))
	if err != nil {
		return nil, err
	}
	key, err := readSecret(filepath.Join(dir, adminKeyFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	c := &admin.ClusterCredential{Token: string(trimSpace(tok)), CertPEM: cert, KeyPEM: key}
	if len(c.Token) != 64 {
		return nil, fmt.Errorf("%s: want 64 hex digits", filepath.Join(dir, tokenFile))
	}
	return c, nil
}

// readSecret reads a secret file, refusing one that others may read.
func readSecret(name string) ([]byte, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v): chmod 600 it", name, st.Mode().Perm())
	}
	return os.ReadFile(name)
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
