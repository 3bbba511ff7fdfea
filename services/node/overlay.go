package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/admin"
)

// loaded is the overlay the node runs on and where it came from.
type loaded struct {
	node *overlays.Node
	info admin.OverlayInfo
	// lastGood says what happened to the last good copy ("" when nothing
	// was written).
	lastGood string
}

// loadOverlay reads primary (the FAT copy or the --overlay file, reported
// as source) and falls back to the last good copy at lastGood when primary
// is missing or invalid. A valid primary that differs from the last good
// copy replaces it atomically; failing to write it is reported in
// lastGood, not an error.
func loadOverlay(primary, source, lastGood string) (loaded, error) {
	data, err := os.ReadFile(primary)
	var n *overlays.Node
	if err == nil {
		n, err = overlays.Parse(primary, data)
	} else {
		err = fmt.Errorf("reading %s: %w", primary, err)
	}
	if err == nil {
		l := loaded{node: n, info: admin.OverlayInfo{Source: source, Path: primary}}
		switch changed, werr := updateLastGood(lastGood, data); {
		case werr != nil:
			l.lastGood = "could not save the last good copy: " + werr.Error()
		case changed:
			l.lastGood = "saved as the last good copy at " + lastGood
		}
		return l, nil
	}
	reason := err.Error()
	n, lerr := overlays.Load(lastGood)
	if lerr != nil {
		return loaded{}, fmt.Errorf("no usable overlay:\n%s\nand the last good copy failed too:\n%w", reason, lerr)
	}
	return loaded{node: n, info: admin.OverlayInfo{Source: admin.SourceLastGood, Path: lastGood, FallbackReason: reason}}, nil
}

// updateLastGood writes data to path unless path already holds it, and
// reports whether it wrote.
func updateLastGood(path string, data []byte) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// writeFileAtomic replaces path with data so that a reader (or a power
// cut) sees the old or the new content, never a mix: it writes a temporary
// file in the same folder, syncs it, renames it over path and syncs the
// folder.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// readRelease reads release.json; a missing file is the zero Release.
func readRelease(path string) (admin.Release, error) {
	var r admin.Release
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("reading release: %w", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("reading release %s: %w", path, err)
	}
	return r, nil
}

// etcFiles returns the contents of /etc/hostname, /etc/hosts and
// /etc/resolv.conf for n.
func etcFiles(n *overlays.Node) map[string]string {
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if a := n.Eth0Address(); a.IsValid() {
		fmt.Fprintf(&hosts, "%v\t%s\n", a.Addr(), n.Hostname)
	} else {
		fmt.Fprintf(&hosts, "127.0.1.1\t%s\n", n.Hostname)
	}
	var resolv strings.Builder
	if len(n.DNS) == 0 {
		resolv.WriteString("# no dns servers in the overlay\n")
	}
	for _, d := range n.DNS {
		fmt.Fprintf(&resolv, "nameserver %v\n", d)
	}
	return map[string]string{
		"hostname":    n.Hostname + "\n",
		"hosts":       hosts.String(),
		"resolv.conf": resolv.String(),
	}
}

// writeEtc writes etcFiles(n) into dir.
func writeEtc(dir string, n *overlays.Node) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for name, content := range etcFiles(n) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}
