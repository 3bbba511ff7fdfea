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
	var imgs []*rolloutImage
	for _, role := range []string{"lbmaster", "lbbackup", "web"} {
		ri, err := openRolloutImage(smallRoleImage(t, dir, "v2", "kernel", keys, role))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ri.file.Close() })
		imgs = append(imgs, ri)
	}
	plan, err := planRollout(nodes, imgs)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range plan {
		order = append(order, s.node.Hostname)
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
					mu.Unlock()
				}
				if host == tc.failOn {
					f.fail = "web: not healthy"
				}
				fakes[host] = f
			}
			var out bytes.Buffer
			err := rollout(context.Background(), &out, io.Discard, plan, rolloutOptions{
				client:  func(n *overlays.Node) (*adminClient, error) { return newAdminClient(fakes[n.Hostname].addr, keys) },
				update:  updateOptions{out: &out, poll: 10 * time.Millisecond},
				timeout: 30 * time.Second,
			})
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "stopping the rollout")) {
				t.Fatalf("rollout = %v\n%s", err, out.String())
			}
			if got := strings.Join(updated, " "); got != tc.updated {
				t.Errorf("updated %s, want %s", got, tc.updated)
			}
		})
	}

	// An image for a role no node has, or two for one role, is refused.
	if _, err := planRollout(nodes[:1], imgs); err == nil {
		t.Error("an image for a missing role was planned")
	}
	if _, err := planRollout(nodes, append(imgs, imgs[0])); err == nil || !strings.Contains(err.Error(), "two images") {
		t.Errorf("two images for a role: %v", err)
	}
}
