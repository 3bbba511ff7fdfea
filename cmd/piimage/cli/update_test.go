package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/piimage/piimage/cmd/piimage/rollout"
	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/ota/otaimage"
	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/ota"
)

func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"keygen", "--keys", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{keyFile: 0o600, pubFile: 0o644, tokenFile: 0o600, adminCertFile: 0o644, adminKeyFile: 0o600, ".gitignore": 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", name, st.Mode(), err, mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".gitignore")); !strings.Contains(string(b), "*\n") {
		t.Errorf(".gitignore = %q", b)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, tokenFile))
	if s := out.String(); strings.Contains(s, "PRIVATE") || strings.Contains(s, strings.TrimSpace(string(tok))) || !strings.Contains(s, "key id") {
		t.Errorf("keygen printed a secret or no key id:\n%s", s)
	}
	if err := Run(context.Background(), []string{"keygen", "--keys", dir}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "never replaces") {
		t.Errorf("a second keygen: %v", err)
	}
	os.Chmod(filepath.Join(dir, keyFile), 0o644)
	if _, err := loadKeys(dir); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("loading a world-readable key: %v", err)
	}
}

// smallImage writes a small signed image of version with a kernel of
// kernel, signed by the key in keysDir.
func smallImage(t *testing.T, dir, version, kernel, keysDir string) string {
	t.Helper()
	return smallRoleImage(t, dir, version, kernel, keysDir, "web")
}

// smallRoleImage is smallImage for a role.
func smallRoleImage(t *testing.T, dir, version, kernel, keysDir, role string) string {
	t.Helper()
	cfg := "os_prefix=slot-a/\nkernel=vmlinuz\n"
	f := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s), Mode: 0o644} }
	boot := fstest.MapFS{
		"config.txt": f(cfg), "tryboot.txt": f(cfg),
		"slot-a/vmlinuz":       f(strings.Repeat(kernel, 3000)),
		"slot-a/cmdline.txt":   f("console=ttyS0 root=PARTUUID=0a0b0c0d-02 ro\n"),
		"slot-a/release.json":  f(`{"version":"` + version + `","board":"pi3","role":"` + role + `"}`),
		"slot-a/manifest.json": {Mode: 0o644}, "slot-a/manifest.sig": {Mode: 0o644},
		"slot-b": {Mode: fs.ModeDir | 0o755},
	}
	p := filepath.Join(dir, role+"-"+version+".img")
	_, err := image.Write(context.Background(), p, &image.Plan{
		Layout: image.Layout{DiskID: 0x0a0b0c0d}, Boot: boot,
		Root: fstest.MapFS{"init": {Data: []byte("init " + version), Mode: 0o755}},
		Data: fstest.MapFS{}, BootVolumeID: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	k, err := loadKeys(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otaimage.Sign(p, k.priv, time.Time{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeNode is a node's admin API and update agent in this process, on
// loopback, with its boot folder and root partitions in files. Its
// "reboot" runs the trial at once: commit, or roll back when fail is set.
type fakeNode struct {
	addr  string
	boot  string
	agent *ota.Agent
	fail  string
	// updated, when set, is called when an update was written.
	updated func()
	// control, when set, answers the service commands (handover, drain).
	control func(service, command, arg string) (string, error)
}

func startFakeNode(t *testing.T, keysDir string) *fakeNode {
	t.Helper()
	dir := t.TempDir()
	n := &fakeNode{boot: filepath.Join(dir, "boot")}
	os.MkdirAll(filepath.Join(n.boot, "slot-a"), 0o755)
	os.WriteFile(filepath.Join(n.boot, "config.txt"), []byte("os_prefix=slot-a/\n"), 0o644)
	roots := map[string]string{}
	for _, s := range []string{"a", "b"} {
		roots[s] = filepath.Join(dir, "root-"+s)
		os.WriteFile(roots[s], make([]byte, 1<<20), 0o644)
	}
	k, err := loadKeys(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	newAgent := func(booted string) *ota.Agent {
		d, err := ota.NewOSDir(n.boot)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return &ota.Agent{
			Boot: d, Board: "pi3", Booted: booted, DiskID: 0x0a0b0c0d,
			Keys: []ed25519.PublicKey{k.pub()},
			Root: func(slot string) (ota.Device, error) { return ota.OpenFileDevice(roots[slot]) },
			Log:  slog.New(slog.DiscardHandler),
		}
	}
	n.agent = newAgent("a")
	credDir := filepath.Join(dir, "cred")
	os.MkdirAll(credDir, 0o700)
	for name, data := range k.cred.NodeFiles() {
		os.WriteFile(filepath.Join(credDir, name), data, 0o600)
	}
	creds, err := admin.LoadCredentials(credDir)
	if err != nil {
		t.Fatal(err)
	}
	srv := &admin.Server{Node: &overlays.Node{Hostname: "n1", Role: "web",
		Interfaces: overlays.Interfaces{Eth0: &overlays.Interface{Address: netip.MustParsePrefix("10.0.2.15/24")}}}}
	srv.Control = func(_ context.Context, service, command, arg string) (string, error) {
		if n.control == nil {
			return "", errors.New("no commands")
		}
		return n.control(service, command, arg)
	}
	up := &admin.OTA{Agent: n.agent, Log: slog.New(slog.DiscardHandler), Updated: func(res *ota.Result) {
		// The reboot into the trial, and its verdict.
		if n.updated != nil {
			n.updated()
		}
		a := newAgent(res.Slot)
		_, tr, _, err := a.OnBoot()
		if err != nil {
			t.Error(err)
			return
		}
		if n.fail != "" {
			err = a.Rollback(*tr, n.fail)
		} else {
			err = a.Commit(*tr)
		}
		if err != nil {
			t.Error(err)
		}
	}}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		admin.ServeSplit(ctx, []net.Listener{ln}, creds.TLSConfig(), srv.SecureHandler(creds, up), srv.PlainHandler())
	}()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

func TestUpdateCommand(t *testing.T) {
	dir := t.TempDir()
	keys, other := filepath.Join(dir, "keys"), filepath.Join(dir, "other")
	for _, d := range []string{keys, other} {
		if err := Run(context.Background(), []string{"keygen", "--keys", d}, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	n := startFakeNode(t, keys)
	c, err := newAdminClient(n.addr, keys)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	opts := rollout.PushOptions{Out: &out, Poll: 10 * time.Millisecond}

	v2 := smallImage(t, dir, "v2", "kernel", keys)
	res, err := rollout.Push(ctx, c, openImage(t, v2), opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Result != ota.ResultCommitted || res.Version != "v2" || res.Slot != "b" || res.Err() != nil || res.Sent == 0 {
		t.Errorf("outcome %+v", res)
	}
	if !strings.Contains(out.String(), "committed:") {
		t.Errorf("output:\n%s", out.String())
	}

	// v3 has the same kernel: the node copies it (from slot b, running)
	// and only the root and release.json travel. Its trial fails.
	n.agent.Booted = "b"
	n.fail = "web: not healthy"
	v3 := smallImage(t, dir, "v3", "kernel", keys)
	out.Reset()
	res, err = rollout.Push(ctx, c, openImage(t, v3), opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Result != ota.ResultRolledBack || res.Reason != "web: not healthy" || res.Err() == nil {
		t.Errorf("outcome %+v", res)
	}
	kernel := openImage(t, v3).Manifest
	// Sent counts the whole stream: the manifest and signature too.
	if k, _ := kernel.Lookup("vmlinuz"); res.Sent > kernel.TotalSize()-k.Size+2048 {
		t.Errorf("sent %d of %d bytes: the kernel the node had was sent", res.Sent, kernel.TotalSize())
	}

	// Signed by another cluster: refused.
	bad := smallImage(t, filepath.Join(dir, "bad"), "v4", "kernel", other)
	_, err = rollout.Push(ctx, c, openImage(t, bad), opts)
	if err == nil || !strings.Contains(err.Error(), "refused the update (nothing was written)") {
		t.Errorf("badly signed: %v", err)
	}

	// A client with another cluster's keys does not trust the node.
	c2, _ := newAdminClient(n.addr, other)
	if _, err := rollout.Push(ctx, c2, openImage(t, v2), opts); err == nil || !strings.Contains(err.Error(), "is not the cluster's") {
		t.Errorf("client with other keys: %v", err)
	}
}
