package node

import (
	"strings"
	"testing"

	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/supervise"
)

type fakeStatus []supervise.Status

func (f *fakeStatus) Status() []supervise.Status { return *f }

func TestTrialProblems(t *testing.T) {
	ready := make(chan struct{})
	close(ready)
	notReady := make(chan struct{})
	ok := supervise.Status{Name: "web", State: supervise.StateRunning, Health: supervise.HealthOK}
	for _, tc := range []struct {
		name     string
		eth0     chan struct{}
		rounds   [][]supervise.Status
		unhealty bool
		want     string // in the last round's problems; "" means none
		overlay  string
	}{
		{"overlay from the last good copy", ready, [][]supervise.Status{{ok}}, false, "node.yaml is not valid for this version", admin.SourceLastGood},
		{"healthy", ready, [][]supervise.Status{{ok}, {ok}}, false, "", ""},
		{"no eth0", notReady, [][]supervise.Status{{ok}}, false, "eth0 is not configured", ""},
		{"not checked yet", ready, [][]supervise.Status{{{Name: "web", State: supervise.StateRunning, Health: supervise.HealthUnknown}}}, false, "web: running (unknown)", ""},
		{"backoff", ready, [][]supervise.Status{{{Name: "web", State: supervise.StateBackoff, Health: supervise.HealthNotRunning}}}, false, "web: backoff", ""},
		{"restarted", ready, [][]supervise.Status{{ok}, {{Name: "web", State: supervise.StateRunning, Health: supervise.HealthOK, Restarts: 1, LastExit: "exit status 1"}}}, false, "web restarted (exit status 1)", ""},
		{"restarts before the trial began count once", ready, [][]supervise.Status{{{Name: "web", State: supervise.StateRunning, Health: supervise.HealthOK, Restarts: 2}}}, false, "", ""},
		{"finished by choice", ready, [][]supervise.Status{{ok, {Name: "mirror", State: supervise.StateFinished, Health: supervise.HealthNotRunning}}}, false, "", ""},
		{"test hook", ready, [][]supervise.Status{{ok}}, true, "fails its health checks on purpose", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &otaNode{testUnhealthy: tc.unhealty, overlay: admin.OverlayInfo{Source: tc.overlay}}
			restarts := map[string]int{}
			var p []string
			for _, r := range tc.rounds {
				f := fakeStatus(r)
				p = o.problems(&f, tc.eth0, restarts)
			}
			got := strings.Join(p, "; ")
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("problems %q, want %q", got, tc.want)
			}
		})
	}
	if !isTestUnhealthy("v3"+TestUnhealthySuffix) || isTestUnhealthy("v3") || isTestUnhealthy("v3+test-unhealthy-not") {
		t.Error("isTestUnhealthy")
	}
}
