package node

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// bridgeLab is a set of network namespaces, one per host, whose eth0s
// hang on one bridge (in a namespace of its own), on a random test-only
// 10.x.y.0/24 that exists only inside them. Everything is deleted when
// the test ends.
type bridgeLab struct {
	t      *testing.T
	prefix string
	ns     map[string]string
	octet  map[string]int
}

// newBridgeLab creates the lab; hosts maps each host to the last octet of
// its address. It skips without root, ip or go.
func newBridgeLab(t *testing.T, hosts map[string]int) *bridgeLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	for _, tool := range []string{"ip", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	b := make([]byte, 3)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	l := &bridgeLab{t: t, prefix: fmt.Sprintf("10.%d.%d", 100+int(b[0])%100, b[1]), ns: map[string]string{}, octet: hosts}
	br := "piimg-hbr-" + suffix
	l.addNS(br)
	l.ip("-n", br, "link", "add", "br0", "type", "bridge")
	l.ip("-n", br, "link", "set", "br0", "up")
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	for i, h := range names {
		ns := fmt.Sprintf("piimg-h%s-%s", h, suffix)
		l.addNS(ns)
		l.ns[h] = ns
		port := fmt.Sprintf("p%d", i)
		l.ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", br)
		l.ip("-n", br, "link", "set", port, "master", "br0")
		l.ip("-n", br, "link", "set", port, "up")
		l.ip("-n", ns, "link", "set", "lo", "up")
		if !strings.HasPrefix(h, "node") {
			// Nodes configure their own eth0 (process mode does).
			l.ip("-n", ns, "addr", "add", l.addr(h)+"/24", "dev", "eth0")
			l.ip("-n", ns, "link", "set", "eth0", "up")
		}
	}
	return l
}

func (l *bridgeLab) addNS(ns string) {
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		l.t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	l.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("deleting netns %s: %v: %s", ns, err, out)
		}
	})
}

func (l *bridgeLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (l *bridgeLab) addr(h string) string {
	o, ok := l.octet[h]
	if !ok {
		l.t.Fatalf("no host %s", h)
	}
	return fmt.Sprintf("%s.%d", l.prefix, o)
}

// sub replaces PFX in s with the lab's prefix.
func (l *bridgeLab) sub(s string) string { return strings.ReplaceAll(s, "PFX", l.prefix) }

// in runs f on a thread inside host h's namespace; sockets f opens stay
// there.
func (l *bridgeLab) in(h string, f func()) {
	l.t.Helper()
	ns, err := netns.GetFromName(l.ns[h])
	if err != nil {
		l.t.Fatal(err)
	}
	defer ns.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		l.t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		l.t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			l.t.Errorf("returning to the original namespace: %v", err)
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	f()
}

// client returns an HTTP client whose connections start in host h.
func (l *bridgeLab) client(h string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dialIn(l.t, l.ns[h]), DisableKeepAlives: true}}
}

// buildInit builds cmd/init into a temporary folder.
func buildInit(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "init")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/piimage/piimage/cmd/init").CombinedOutput(); err != nil {
		t.Fatalf("building cmd/init: %v\n%s", err, out)
	}
	return bin
}
