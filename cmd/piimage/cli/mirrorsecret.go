package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
)

// mirrorSecretFile is the cluster's web-root mirroring secret in the keys
// folder. Every web node's data partition gets a copy (rootfs.MirrorSecretPath),
// so replicas and their primary authenticate each other.
const mirrorSecretFile = "mirror.secret"

// ensureMirrorSecret returns the mirror secret of the keys folder dir,
// making a random one (32 bytes, hex) on first use.
func ensureMirrorSecret(dir string, w io.Writer) ([]byte, error) {
	path := filepath.Join(dir, mirrorSecretFile)
	b, err := readSecret(path)
	if err == nil {
		if len(b) < 16 {
			return nil, fmt.Errorf("%s: the mirror secret must be at least 16 bytes", path)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := []byte(hex.EncodeToString(raw) + "\n")
	switch err := writeSecret(path, secret); {
	case errors.Is(err, fs.ErrExist):
		return readSecret(path) // another build made it a moment ago
	case err != nil:
		return nil, fmt.Errorf("writing the mirror secret: %w", err)
	}
	fmt.Fprintf(w, "created the cluster's mirror secret in %s (kept out of git)\n", path)
	return secret, nil
}
