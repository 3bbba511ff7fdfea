package ota

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path"
	"testing"

	imgota "github.com/piimage/piimage/image/ota"
)

const testDiskID = 0x1234abcd

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// release is a built slot: its signed manifest and its bytes.
type release struct {
	m     *imgota.Manifest
	mb    []byte
	sig   imgota.Signature
	root  []byte
	files map[string][]byte
}

const testConfig = "# piimage test\nos_prefix=slot-a/\nkernel=vmlinuz\narm_64bit=1\n"

// makeRelease builds a small release: the kernel's bytes come from
// kernel, everything else from version.
func makeRelease(t testing.TB, version, kernel string, key ed25519.PrivateKey, mod func(*imgota.Manifest)) release {
	t.Helper()
	return makeReleaseRoot(t, version, kernel, "root "+version+" ", key, mod)
}

// makeReleaseRoot is makeRelease with the root's bytes made of rootText.
func makeReleaseRoot(t testing.TB, version, kernel, rootText string, key ed25519.PrivateKey, mod func(*imgota.Manifest)) release {
	t.Helper()
	files := map[string][]byte{
		"vmlinuz":             bytes.Repeat([]byte("K"+kernel), 40),
		"bcm2710-rpi-3-b.dtb": bytes.Repeat([]byte("dtb"+kernel), 8),
		"overlays/x.dtbo":     []byte("overlay " + kernel),
		"release.json":        fmt.Appendf(nil, `{"version":%q}`+"\n", version),
	}
	root := bytes.Repeat([]byte(rootText), 2048/len(rootText)+1)[:2000]
	m := &imgota.Manifest{
		Format: imgota.Format, Board: "pi3", Version: version,
		Root:      imgota.Part{Size: int64(len(root)), SHA256: sha256.Sum256(root)},
		ConfigTxt: testConfig,
		Cmdline:   "console=ttyS0 root=PARTUUID=00000001-02 rootfstype=squashfs ro",
	}
	for _, p := range []string{"vmlinuz", "bcm2710-rpi-3-b.dtb", "overlays/x.dtbo", "release.json"} {
		m.Files = append(m.Files, imgota.File{Path: p, Size: int64(len(files[p])), SHA256: sha256.Sum256(files[p])})
	}
	if mod != nil {
		mod(m)
	}
	mb, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return release{m: m, mb: mb, sig: imgota.Sign(key, mb), root: root, files: files}
}

// payload returns r's stream; omit says which files to send as "have".
func (r release) payload(t testing.TB, omit func(imgota.File) bool) []byte {
	return r.deltaPayload(t, omit, nil)
}

// deltaPayload returns r's stream with the root as a delta against the
// chunks base (none: inline).
func (r release) deltaPayload(t testing.TB, omit func(imgota.File) bool, base []imgota.Digest) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := imgota.NewWriter(&buf, r.mb, r.sig)
	if err != nil {
		t.Fatal(err)
	}
	if base != nil {
		_, err = w.Delta(bytes.NewReader(r.root), base)
	} else {
		err = w.Inline(bytes.NewReader(r.root))
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.m.Files {
		if omit != nil && omit(f) {
			err = w.Have()
		} else {
			err = w.Inline(bytes.NewReader(r.files[f.Path]))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// install writes r into slot of s, as a build (or a finished update) does.
func (r release) install(t testing.TB, s cardState, slot string) {
	t.Helper()
	dir := imgota.SlotDir(slot)
	s.boot.dirs[dir] = true
	for p, b := range r.files {
		s.boot.files[path.Join(dir, p)] = bytes.Clone(b)
		s.boot.dirs[path.Join(dir, path.Dir(p))] = true
	}
	cl, err := imgota.CmdlineFor(r.m.Cmdline, testDiskID, slot)
	if err != nil {
		t.Fatal(err)
	}
	s.boot.files[path.Join(dir, imgota.CmdlineFile)] = []byte(cl)
	s.boot.files[path.Join(dir, imgota.ManifestFile)] = bytes.Clone(r.mb)
	s.boot.files[path.Join(dir, imgota.SignatureFile)] = r.sig.Marshal()
	copy(s.devs[slot], r.root)
}

// newCardState is a card built with a in slot a (config.txt and
// tryboot.txt boot it) and b, when not nil, left in slot b.
func newCardState(t testing.TB, a release, b *release) cardState {
	t.Helper()
	s := cardState{
		boot: snapshot{files: map[string][]byte{}, dirs: map[string]bool{".": true}},
		devs: map[string][]byte{"a": make([]byte, 4096), "b": make([]byte, 4096)},
	}
	a.install(t, s, "a")
	s.boot.dirs["slot-b"] = true
	if b != nil {
		b.install(t, s, "b")
	}
	cfg, _ := imgota.ConfigFor(testConfig, "a")
	s.boot.files[ConfigFile] = []byte(cfg)
	s.boot.files[TryBoot] = []byte(cfg)
	s.boot.files["node.yaml"] = []byte("hostname: n1\n")
	return s
}

func (c *card) agent(booted string, key ed25519.PrivateKey) *Agent {
	n := 0
	return &Agent{
		Boot: c.boot, Root: c.open, Keys: []ed25519.PublicKey{pub(key)},
		Board: "pi3", Booted: booted, DiskID: testDiskID,
		NewID: func() string { n++; return fmt.Sprintf("id%d", n) },
		Log:   slog.New(slog.DiscardHandler),
	}
}

// firmware returns the slot the Pi firmware boots from s: tryboot.txt on
// a tryboot reboot (when it exists), else config.txt.
func firmware(s cardState, tryboot bool) string {
	name := ConfigFile
	if _, ok := s.boot.files[TryBoot]; tryboot && ok {
		name = TryBoot
	}
	slot, _ := imgota.ConfigSlot(string(s.boot.files[name]))
	return slot
}

// bootable checks that slot of s is complete and intact and returns its
// version.
func bootable(s cardState, slot string) (string, error) {
	if slot == "" {
		return "", fmt.Errorf("config.txt names no slot")
	}
	c := s.mount(-1)
	m, err := VerifySlot(c.boot, c.open, slot)
	if err != nil {
		return "", err
	}
	return m.Version, nil
}
