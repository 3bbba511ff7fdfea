package lab

import (
	"io"
	"time"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/admin"
)

// Config says which cluster Up brings up and where.
type Config struct {
	// Name is the lab's name; "" means DefaultName.
	Name string
	// RunDir holds the lab's folder; "" means DefaultRunDir.
	RunDir string
	// Init is the init binary for this machine (GOARCH of the host).
	Init string
	// Nodes is the cluster, e.g. from overlays.LoadDir.
	Nodes []*overlays.Node
	// Log receives progress lines; nil means none.
	Log io.Writer
	// Ready bounds the wait for every node and the VIP; 0 means 60s.
	Ready time.Duration
	// Cards, when set, gives every node a card folder made from the
	// signed image of its role: the node runs that image's slot and takes
	// signed updates, trials, commits and rolls back as on a Pi (Rollout,
	// the report's rolling update).
	Cards *Cards
}

// Cards are the signed images a lab's nodes boot, with the keys they were
// built with.
type Cards struct {
	// Images are signed images, one per role (the role its release.json
	// names).
	Images []string
	// PubPEM is the update public key the images were built with; Admin
	// the cluster's admin credential.
	PubPEM []byte
	Admin  *admin.ClusterCredential
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.RunDir == "" {
		c.RunDir = DefaultRunDir
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Ready == 0 {
		c.Ready = 60 * time.Second
	}
}

// ReportConfig says how Report runs its scenarios.
type ReportConfig struct {
	// Rate is the load in requests per second; 0 means 200.
	Rate float64
	// Before is how long the load runs before the fault, After how long
	// it goes on after it; 0 means 3s and 6s.
	Before, After time.Duration
	// Timeout bounds each request; 0 means 2s.
	Timeout time.Duration
	// Only lists the scenarios to run by key (see ScenarioKeys); empty
	// means all.
	Only []string
	// Log receives progress lines; nil means none.
	Log io.Writer
	// OTA, when set, is the rolling update of the scenario "ota": the
	// lab's nodes must run cards (Config.Cards) and OTA.Images be newer
	// signed images of their roles.
	OTA *Cards
	// OTAUnavailable says why the rolling update row has no numbers when
	// OTA is nil; "" means "not available".
	OTAUnavailable string
}

func (c *ReportConfig) defaults() {
	if c.Rate == 0 {
		c.Rate = 200
	}
	if c.Before == 0 {
		c.Before = 3 * time.Second
	}
	if c.After == 0 {
		c.After = 6 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Scenario keys, in the report's order.
const (
	ScenarioLBLink     = "lb-link"
	ScenarioLBLinkBack = "lb-link-back"
	ScenarioLBKill     = "lb-kill"
	ScenarioLBReboot   = "lb-reboot"
	ScenarioWebKill    = "web-kill"
	ScenarioWebCrash   = "web-crash"
	ScenarioWebDrain   = "web-drain"
	ScenarioOTA        = "ota"
)

// ScenarioKeys lists the scenarios Report knows.
func ScenarioKeys() []string {
	return []string{ScenarioLBLink, ScenarioLBLinkBack, ScenarioLBKill, ScenarioLBReboot, ScenarioWebKill, ScenarioWebCrash, ScenarioWebDrain, ScenarioOTA}
}

// Targets of the issue, checked per scenario.
var (
	targetLinkCut = "gap < 0.5s, failed < 1%"
	targetWebKill = "failed <= in flight"
	targetPlanned = "0 failed"
)

func checkLinkCut(r Result) bool { return r.LongestGap < 500*time.Millisecond && r.FailedPct() < 1 }
func checkWebKill(r Result) bool { return r.Failed <= r.InFlight }
func checkPlanned(r Result) bool { return r.Failed == 0 }
