package boards

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DebianPackage is a binary package of Debian's archive, pinned by version
// and SHA-256 (the values of `apt-cache show NAME:ARCH`).
type DebianPackage struct {
	Name    string
	Version string
	Arch    string
	// Filename is the package's path in the archive, as the Packages
	// index says ("pool/main/l/linux/...deb").
	Filename string
	Size     int64
	SHA256   string
}

func (p DebianPackage) String() string { return p.Name + "_" + p.Version + "_" + p.Arch }

// DebianSource says where Debian packages come from and where they are
// kept once verified. The zero value is usable: mirrors from apt's sources,
// cache in the user's cache folder.
type DebianSource struct {
	// Mirrors are base URLs of Debian archives (the URIs of apt's sources,
	// e.g. "http://HOST/debian"), tried in order. Empty: $PIIMAGE_DEBIAN_MIRROR
	// if set, else the URIs of the deb entries in AptDir's sources.
	Mirrors []string
	// AptDir is apt's configuration folder (default /etc/apt).
	AptDir string
	// CacheDir holds verified packages and their unpacked files (default
	// $PIIMAGE_CACHE, else os.UserCacheDir()/piimage).
	CacheDir string
	// Client downloads packages (default: a client with a 10-minute
	// timeout, honouring the proxy environment variables).
	Client *http.Client
	Log    *slog.Logger
}

func (s DebianSource) cacheDir() (string, error) {
	if s.CacheDir != "" {
		return s.CacheDir, nil
	}
	if d := os.Getenv("PIIMAGE_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding a cache folder for Debian packages (set PIIMAGE_CACHE): %w", err)
	}
	return filepath.Join(d, "piimage"), nil
}

func (s DebianSource) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// mirrors returns the archives to try, in order.
func (s DebianSource) mirrors() ([]string, error) {
	if len(s.Mirrors) > 0 {
		return s.Mirrors, nil
	}
	if m := os.Getenv("PIIMAGE_DEBIAN_MIRROR"); m != "" {
		return strings.Fields(m), nil
	}
	dir := s.AptDir
	if dir == "" {
		dir = "/etc/apt"
	}
	return AptMirrors(dir)
}

// Fetch returns the path of package p in the cache, downloading it first
// when it is not there. Every use checks the file's SHA-256 against the pin.
func (s DebianSource) Fetch(ctx context.Context, p DebianPackage) (string, error) {
	cache, err := s.cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "debian")
	path := filepath.Join(dir, p.String()+".deb")
	if err := verifyFile(path, p); err == nil {
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		s.log().Warn("cached package is bad; downloading it again", "package", p.String(), "err", err)
	}
	mirrors, err := s.mirrors()
	if err != nil {
		return "", fmt.Errorf("fetching Debian package %s: %w (the cache %s does not have it yet)", p, err, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the package cache: %w", err)
	}
	var errs []string
	for _, m := range mirrors {
		url := strings.TrimSuffix(m, "/") + "/" + p.Filename
		err := s.download(ctx, url, path, p)
		if err == nil {
			return path, nil
		}
		errs = append(errs, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return "", fmt.Errorf("fetching Debian package %s (%s): %s; the first build for this board needs a Debian mirror (apt's sources in /etc/apt, or PIIMAGE_DEBIAN_MIRROR=URL); later builds use the cache in %s, where you may also put the verified .deb yourself",
		p, p.Filename, strings.Join(errs, "; "), dir)
}

// download fetches url into path through a temporary file, checking size
// and hash before the rename.
func (s DebianSource) download(ctx context.Context, url, path string, p DebianPackage) error {
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Minute}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	s.log().Info("downloading Debian package", "package", p.String(), "url", url, "bytes", p.Size)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: not found (Debian removes superseded kernel packages from its mirrors: update the pin in boards/ with `apt-cache show %s:%s`)", url, p.Name, p.Arch)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, p.Size+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	if n != p.Size {
		return fmt.Errorf("%s: got %d bytes, the pin says %d", url, n, p.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("%s: SHA-256 %s, the pin says %s", url, got, p.SHA256)
	}
	return os.Rename(tmp.Name(), path)
}

// verifyFile checks path's size and SHA-256 against p.
func verifyFile(path string, p DebianPackage) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != p.Size {
		return fmt.Errorf("%s: %d bytes, the pin says %d", path, st.Size(), p.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("%s: SHA-256 %s, the pin says %s", path, got, p.SHA256)
	}
	return nil
}
