package cli

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piimage/piimage/cmd/piimage/rollout"
	"github.com/piimage/piimage/overlays"
)

func TestRollout(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := Run(context.Background(), []string{"keygen", "--keys", keys}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	nodes, err := overlays.LoadDir(srcTree + "/overlays")
	if err != nil {
		t.Fatal(err)
	}
	var imgs []*rollout.Image
	for _, role := range []string{"lbmaster", "lbbackup", "web"} {
		ri, err := rollout.OpenImage(smallRoleImage(t, dir, "v2", "kernel", keys, role))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ri.File.Close() })
		imgs = append(imgs, ri)
	}
	plan, err := rollout.Plan(nodes, imgs)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range plan {
		order = append(order, s.Node.Hostname)
	}
	if got := strings.Join(order, " "); got != "lbbackup lbmaster web01 web02" {
		t.Fatalf("plan %s", got)
	}

	for _, tc := range []struct {
		name    string
		failOn  string
		updated string
		err     string
	}{
		{"all commit", "", "lbbackup lbmaster web01 web02", ""},
		{"stops at the first rollback", "web01", "lbbackup lbmaster web01", "web01"},
	} {
		// What the nodes saw, in order: updates and service commands.
		var events []string
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var updated []string
			fakes := map[string]*fakeNode{}
			for _, n := range nodes {
				f := startFakeNode(t, keys)
				host := n.Hostname
				f.updated = func() {
					mu.Lock()
					updated = append(updated, host)
					events = append(events, host+" updated")
					mu.Unlock()
				}
				f.control = func(service, command, arg string) (string, error) {
					mu.Lock()
					events = append(events, strings.TrimSpace(host+" "+service+" "+command+" "+arg))
					mu.Unlock()
					return "done", nil
				}
				if host == tc.failOn {
					f.fail = "web: not healthy"
				}
				fakes[host] = f
			}
			var out bytes.Buffer
			_, err := rollout.Run(context.Background(), plan, rollout.Options{
				Cluster: nodes,
				Client:  func(n *overlays.Node) (*rollout.Client, error) { return newAdminClient(fakes[n.Hostname].addr, keys) },
				Push:    rollout.PushOptions{Out: &out, Poll: 10 * time.Millisecond},
				Timeout: 30 * time.Second,
				Out:     &out,
			})
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "stopping the rollout")) {
				t.Fatalf("rollout = %v\n%s", err, out.String())
			}
			if got := strings.Join(updated, " "); got != tc.updated {
				t.Errorf("updated %s, want %s", got, tc.updated)
			}
			// The master hands the VIP over before it reboots; each web
			// node is drained from both balancers before it reboots and
			// gets traffic again after its outcome, also a rollback.
			want := []string{"lbbackup updated", "lbmaster vip handover", "lbmaster updated"}
			for _, web := range []string{"web01", "web02"} {
				want = append(want, "lbbackup balancer drain "+web, "lbmaster balancer drain "+web, web+" updated",
					"lbbackup balancer undrain "+web, "lbmaster balancer undrain "+web)
				if web == tc.failOn {
					break
				}
			}
			if got, w := strings.Join(events, "\n"), strings.Join(want, "\n"); got != w {
				t.Errorf("the nodes saw\n%s\nwant\n%s", got, w)
			}
		})
	}

	// An image for a role no node has, or two for one role, is refused.
	if _, err := rollout.Plan(nodes[:1], imgs); err == nil {
		t.Error("an image for a missing role was planned")
	}
	if _, err := rollout.Plan(nodes, append(imgs, imgs[0])); err == nil || !strings.Contains(err.Error(), "two images") {
		t.Errorf("two images for a role: %v", err)
	}
}
