package ota

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/piimage/piimage/image"
)

// testKey is a fixed key: ed25519 signatures are deterministic, so the
// golden bytes below stay put.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func digest(s string) Digest { return sha256.Sum256([]byte(s)) }

func testManifest() *Manifest {
	return &Manifest{
		Format:  Format,
		Board:   "pi3",
		Version: "v2",
		Built:   "2026-01-01T00:00:00Z",
		Root:    Part{Size: 4, SHA256: digest("root")},
		Files: []File{
			{Path: "vmlinuz", Size: 6, SHA256: digest("kernel")},
			{Path: "overlays/a.dtbo", Size: 1, SHA256: digest("o")},
		},
		ConfigTxt: "os_prefix=slot-a/\nkernel=vmlinuz\n",
		Cmdline:   "console=ttyS0 root=PARTUUID=01020304-02 ro",
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := testManifest()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := got.Marshal()
	if !bytes.Equal(b, b2) {
		t.Errorf("marshal(parse(b)) differs:\n%s\n%s", b, b2)
	}
	if f, ok := got.Lookup("VMLINUZ"); !ok || f.Size != 6 {
		t.Errorf("Lookup ignores case on FAT: %v %v", f, ok)
	}
	if got.TotalSize() != 11 {
		t.Errorf("TotalSize = %d", got.TotalSize())
	}
}

func TestManifestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Manifest)
		want string
	}{
		{"format", func(m *Manifest) { m.Format = 2 }, "format: 2"},
		{"board", func(m *Manifest) { m.Board = "Pi 3" }, "board"},
		{"no version", func(m *Manifest) { m.Version = "" }, "version"},
		{"root size", func(m *Manifest) { m.Root.Size = 0 }, "root.size"},
		{"no files", func(m *Manifest) { m.Files = nil }, "files: 0 entries"},
		{"escape", func(m *Manifest) { m.Files[0].Path = "../config.txt" }, "not a clean relative path"},
		{"absolute", func(m *Manifest) { m.Files[0].Path = "/vmlinuz" }, "not a clean relative path"},
		{"backslash", func(m *Manifest) { m.Files[0].Path = `a\b` }, "FAT-safe"},
		{"manifest name", func(m *Manifest) { m.Files[0].Path = "Manifest.json" }, "written by the node"},
		{"cmdline name", func(m *Manifest) { m.Files[0].Path = "cmdline.txt" }, "written by the node"},
		{"temp name", func(m *Manifest) { m.Files[0].Path = "x" + TempSuffix }, "temporary suffix"},
		{"case twice", func(m *Manifest) { m.Files[1].Path = "VMLINUZ" }, "listed twice"},
		{"file and folder", func(m *Manifest) { m.Files[0].Path = "overlays" }, "both a file and a folder"},
		{"negative size", func(m *Manifest) { m.Files[0].Size = -1 }, "files[0].size"},
		{"no os_prefix", func(m *Manifest) { m.ConfigTxt = "kernel=vmlinuz\n" }, "config_txt"},
		{"no root", func(m *Manifest) { m.Cmdline = "ro" }, "cmdline"},
		{"two lines", func(m *Manifest) { m.Cmdline = "root=x\nro" }, "cmdline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testManifest()
			tc.edit(m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	if err := testManifest().Validate(); err != nil {
		t.Errorf("valid manifest: %v", err)
	}
}

func TestParseManifestStrict(t *testing.T) {
	b, _ := testManifest().Marshal()
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"unknown field", strings.Replace(string(b), `"format": 1,`, `"format": 1, "extra": 1,`, 1)},
		{"trailing", string(b) + "{}"},
		{"upper hex", strings.Replace(string(b), digest("root").String(), strings.ToUpper(digest("root").String()), 1)},
		{"short hash", strings.Replace(string(b), digest("root").String(), "abcd", 1)},
		{"not json", "hello"},
	} {
		if _, err := ParseManifest([]byte(tc.in)); err == nil {
			t.Errorf("%s: parsed", tc.name)
		}
	}
}

func TestSignVerify(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	pub1 := k1.Public().(ed25519.PublicKey)
	pub2 := k2.Public().(ed25519.PublicKey)
	m, _ := testManifest().Marshal()
	sig := Sign(k1, m)
	if id, err := Verify([]ed25519.PublicKey{pub2, pub1}, m, sig); err != nil || id != KeyID(pub1) {
		t.Fatalf("Verify = %q, %v", id, err)
	}
	for _, tc := range []struct {
		name string
		keys []ed25519.PublicKey
		m    []byte
		sig  Signature
	}{
		{"other key", []ed25519.PublicKey{pub2}, m, sig},
		{"no keys", nil, m, sig},
		{"changed manifest", []ed25519.PublicKey{pub1}, bytes.Replace(m, []byte(`"v2"`), []byte(`"v3"`), 1), sig},
		{"bad alg", []ed25519.PublicKey{pub1}, m, Signature{Algorithm: "rsa", Sig: sig.Sig}},
		{"short sig", []ed25519.PublicKey{pub1}, m, Signature{Algorithm: Algorithm, Sig: sig.Sig[:10]}},
		// A signature over the raw manifest, without the context, must
		// not verify: the context binds it to this use.
		{"no context", []ed25519.PublicKey{pub1}, m, Signature{Algorithm: Algorithm, Sig: ed25519.Sign(k1, m)}},
	} {
		if _, err := Verify(tc.keys, tc.m, tc.sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: Verify = %v, want ErrBadSignature", tc.name, err)
		}
	}
	got, err := ParseSignature(sig.Marshal())
	if err != nil || !bytes.Equal(got.Sig, sig.Sig) || got.KeyID != sig.KeyID {
		t.Errorf("ParseSignature(Marshal) = %+v, %v", got, err)
	}
	for _, bad := range []string{`{"alg":"ed25519","key":"x","sig":"AAAA"}`, `{"alg":"x"}`, `{"alg":"ed25519","sig":"` + strings.Repeat("A", 88) + `","more":1}`, `[]`} {
		if _, err := ParseSignature([]byte(bad)); err == nil {
			t.Errorf("ParseSignature(%s) accepted", bad)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	pubPEM, privPEM, err := GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParsePublicKeys(append(append([]byte{}, pubPEM...), MarshalPublicKey(testKey(3).Public().(ed25519.PublicKey))...))
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParsePublicKeys = %d keys, %v", len(keys), err)
	}
	if !keys[0].Equal(priv.Public()) {
		t.Errorf("public key file does not match the private key")
	}
	if !strings.HasPrefix(string(privPEM), "-----BEGIN PRIVATE KEY-----") || !strings.HasPrefix(string(pubPEM), "-----BEGIN PUBLIC KEY-----") {
		t.Errorf("unexpected PEM types:\n%s%s", pubPEM, privPEM)
	}
	if _, err := ParsePrivateKey(pubPEM); err == nil {
		t.Error("a public key parsed as a private key")
	}
	if _, err := ParsePublicKeys(privPEM); err == nil {
		t.Error("a private key parsed as a public key")
	}
	if _, err := ParsePublicKeys([]byte("junk")); err == nil {
		t.Error("junk parsed as public keys")
	}
}

// goldenStream is the payload of testManifest signed with testKey(1):
// magic, manifest length and bytes, signature length and bytes, the root
// inline, the kernel "have", the overlay inline, the trailer.
func goldenStream(t *testing.T) []byte {
	t.Helper()
	m, _ := testManifest().Marshal()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, m, Sign(testKey(1), m))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close before every part was written succeeded")
	}
	if err := w.Inline(strings.NewReader("root")); err != nil {
		t.Fatal(err)
	}
	if err := w.Have(); err != nil {
		t.Fatal(err)
	}
	if err := w.Inline(strings.NewReader("o")); err != nil {
		t.Fatal(err)
	}
	if err := w.Have(); err == nil {
		t.Error("a fourth part was accepted")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestStreamGolden(t *testing.T) {
	b := goldenStream(t)
	m, _ := testManifest().Marshal()
	sig := Sign(testKey(1), m).Marshal()
	// The layout, spelled out.
	want := "5049 4f54 4100 010a" + // "PIOTA\0\1\n"
		hex.EncodeToString([]byte{0, 0, byte(len(m) >> 8), byte(len(m))}) + hex.EncodeToString(m) +
		hex.EncodeToString([]byte{0, 0, 0, byte(len(sig))}) + hex.EncodeToString(sig) +
		"49" + hex.EncodeToString([]byte("root")) + // 'I' root
		"48" + // 'H' vmlinuz
		"49" + hex.EncodeToString([]byte("o")) + // 'I' overlay
		hex.EncodeToString([]byte("PIOTAEND"))
	if got := hex.EncodeToString(b); got != strings.ReplaceAll(want, " ", "") {
		t.Errorf("stream bytes:\n got %s\nwant %s", got, want)
	}
	// The signature bytes are fixed too: ed25519 is deterministic.
	const wantSig = "13035c38"
	if s := hex.EncodeToString(Sign(testKey(1), m).Sig[:4]); s != wantSig {
		t.Errorf("signature starts %s, want %s (did the manifest encoding change?)", s, wantSig)
	}

	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify([]ed25519.PublicKey{testKey(1).Public().(ed25519.PublicKey)}, r.ManifestBytes, r.Signature); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Path+"="+string(data)+map[bool]string{true: "(inline)", false: "(have)"}[e.Inline])
	}
	if s := strings.Join(got, " "); s != "=root(inline) vmlinuz=(have) overlays/a.dtbo=o(inline)" {
		t.Errorf("parts: %s", s)
	}
}

func TestStreamTruncated(t *testing.T) {
	b := goldenStream(t)
	for n := 0; n < len(b); n++ {
		r, err := NewReader(bytes.NewReader(b[:n]))
		if err != nil {
			continue
		}
		for {
			e, err := r.Next()
			if err == io.EOF {
				t.Fatalf("stream cut at %d of %d bytes read to a clean end", n, len(b))
			}
			if err != nil {
				break
			}
			if _, err := io.ReadAll(e.Data); err != nil {
				break
			}
		}
	}
	// Unread data of a part is skipped by Next.
	r, _ := NewReader(bytes.NewReader(b))
	n := 0
	for {
		if _, err := r.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d parts, want 3", n)
	}
}

func TestStreamRejects(t *testing.T) {
	b := goldenStream(t)
	bad := map[string][]byte{
		"magic":        append([]byte("XIOTA\x00\x01\n"), b[8:]...),
		"huge length":  append(append([]byte{}, b[:8]...), 0xff, 0xff, 0xff, 0xff),
		"bad kind":     bytes.Replace(b, []byte("Hroot"), []byte("Xroot"), 1),
		"extra part":   append(b[:len(b)-8], []byte("IPIOTAEND")...),
		"bad manifest": bytes.Replace(b, []byte(`"pi3"`), []byte(`"PI3"`), 1),
	}
	// The 'H' byte of the kernel comes right after the root bytes.
	i := bytes.Index(b, []byte("IrootH"))
	k := append([]byte{}, b...)
	k[i+5] = 'Z'
	bad["bad kind"] = k
	for name, in := range bad {
		r, err := NewReader(bytes.NewReader(in))
		if err != nil {
			continue
		}
		failed := false
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				failed = true
				break
			}
			io.Copy(io.Discard, e.Data)
		}
		if !failed {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSlots(t *testing.T) {
	for _, s := range []string{"a", "b"} {
		n, err := SlotPartition(s)
		m, err2 := image.SlotPartition(s)
		if err != nil || err2 != nil || n != m || SlotDir(s) != image.SlotDir(s) {
			t.Errorf("slot %s: ota says %d %s, image says %d %s", s, n, SlotDir(s), m, image.SlotDir(s))
		}
	}
	if Other("a") != "b" || Other("b") != "a" {
		t.Error("Other")
	}
	for _, tc := range []struct {
		cfg  string
		slot string
		ok   bool
	}{
		{"os_prefix=slot-a/\n", "a", true},
		{"# x\nos_prefix=slot-b/\nkernel=vmlinuz\n", "b", true},
		{"os_prefix=slot-a/\nos_prefix=slot-b\n", "b", true},
		{"os_prefix=other/\n", "", false},
		{"kernel=vmlinuz\n", "", false},
	} {
		slot, ok := ConfigSlot(tc.cfg)
		if slot != tc.slot || ok != tc.ok {
			t.Errorf("ConfigSlot(%q) = %q %v", tc.cfg, slot, ok)
		}
	}
	got, err := ConfigFor("# c\nos_prefix=slot-a/\nkernel=vmlinuz\n", "b")
	if err != nil || got != "# c\nos_prefix=slot-b/\nkernel=vmlinuz\n" {
		t.Errorf("ConfigFor = %q, %v", got, err)
	}
	if _, err := ConfigFor("kernel=x\n", "b"); err == nil {
		t.Error("ConfigFor without os_prefix succeeded")
	}
	cl, err := CmdlineFor("console=ttyS0 root=PARTUUID=01020304-02 ro", 0xdeadbeef, "b")
	if err != nil || cl != "console=ttyS0 root=PARTUUID=deadbeef-03 ro\n" {
		t.Errorf("CmdlineFor = %q, %v", cl, err)
	}
	if want := image.PartUUID(0xdeadbeef, 3); !strings.Contains(cl, want) {
		t.Errorf("CmdlineFor disagrees with image.PartUUID %s", want)
	}
	if _, err := CmdlineFor("ro", 1, "a"); err == nil {
		t.Error("CmdlineFor without root= succeeded")
	}
	if _, err := CmdlineFor("root=x", 0, "a"); err == nil {
		t.Error("CmdlineFor with disk id 0 succeeded")
	}
}

func TestStreamDelta(t *testing.T) {
	chunk := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	a, b, tail := chunk('A', ChunkSize), chunk('B', ChunkSize), chunk('c', 100)
	root := append(append(append([]byte{}, a...), b...), tail...)
	base := append(append(chunk('X', ChunkSize), a...), chunk('b', ChunkSize)...)
	m := testManifest()
	m.Root = Part{Size: int64(len(root)), SHA256: sha256.Sum256(root)}
	mb, _ := m.Marshal()
	hashes, err := ChunkHashes(bytes.NewReader(base), int64(len(base)))
	if err != nil || len(hashes) != 3 {
		t.Fatalf("ChunkHashes: %d, %v", len(hashes), err)
	}
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, mb, Sign(testKey(1), mb))
	sent, err := w.Delta(bytes.NewReader(root), hashes)
	if err != nil || sent != int64(ChunkSize+100) {
		t.Fatalf("Delta sent %d, %v", sent, err)
	}
	if _, err := w.Delta(bytes.NewReader(root), hashes); err == nil {
		t.Error("a second delta part was accepted")
	}
	w.Have()
	w.Inline(strings.NewReader("o"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Records: 'D', then 'C' 00000001, then 'I' and chunk B, then 'I' and
	// the tail.
	b2 := buf.Bytes()
	i := bytes.IndexByte(b2, 'D')
	for i >= 0 && !bytes.HasPrefix(b2[i:], []byte("DC\x00\x00\x00\x01I")) {
		i = bytes.IndexByte(b2[i+1:], 'D') + i + 1
	}
	if i < 0 {
		t.Fatalf("no delta records D C 1 I in the stream")
	}

	for _, withBase := range []bool{true, false} {
		r, err := NewReader(bytes.NewReader(b2))
		if err != nil {
			t.Fatal(err)
		}
		if withBase {
			r.Base = bytes.NewReader(base)
		}
		e, err := r.Next()
		if err != nil || !e.Delta || e.Inline {
			t.Fatalf("root entry %+v, %v", e, err)
		}
		got, err := io.ReadAll(e.Data)
		if !withBase {
			if err == nil {
				t.Error("a chunk copy without a base succeeded")
			}
			continue
		}
		if err != nil || !bytes.Equal(got, root) {
			t.Fatalf("rebuilt root: %d bytes, %v", len(got), err)
		}
		if r.Copied != ChunkSize || r.Received != ChunkSize+100 {
			t.Errorf("copied %d received %d", r.Copied, r.Received)
		}
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, e.Data)
		}
	}
}
