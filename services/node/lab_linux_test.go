package node

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/internal/netnstest"
)

// Tests that need hosts build them with internal/netnstest: a lab
// (netnstest.NewLab) whose process-mode nodes are added with no address
// (Add(name, 0): the init configures eth0 from its overlay, at
// l.Addr(octet)), or a node and a client joined by a veth pair
// (newNetnsPair).

// labSub replaces PFX in s with the lab's subnet, e.g. "PFX.2/24" with
// "10.123.45.2/24".
func labSub(l *netnstest.Lab, s string) string { return strings.ReplaceAll(s, "PFX", l.Subnet) }

// clientIn returns an HTTP client whose connections start in namespace n.
func clientIn(n *netnstest.NS, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: n.DialContext, DisableKeepAlives: true}}
}

// newNetnsPair creates the namespaces node and client joined by a veth
// pair (eth0 in node, down and unaddressed for the init to configure; c0
// = 10.77.0.1/24 in client); they go when the test ends.
func newNetnsPair(t *testing.T) (node, client *netnstest.NS) {
	t.Helper()
	node, client = netnstest.New(t, "n"), netnstest.New(t, "c")
	netnstest.Veth(t, netnstest.End{NS: node, Name: "eth0"}, netnstest.End{NS: client, Name: "c0", Addr: "10.77.0.1/24"})
	return node, client
}

// buildInit builds cmd/init into a temporary folder; it skips without the
// go tool.
func buildInit(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs go to build cmd/init")
	}
	bin := filepath.Join(t.TempDir(), "init")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/piimage/piimage/cmd/init").CombinedOutput(); err != nil {
		t.Fatalf("building cmd/init: %v\n%s", err, out)
	}
	return bin
}
