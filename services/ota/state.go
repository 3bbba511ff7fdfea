package ota

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	imgota "github.com/piimage/piimage/image/ota"
)

// Files at the root of the boot partition.
const (
	// StateFile is the agent's state on the boot partition: the trial in
	// progress (with its boot counter) and the last update's outcome.
	StateFile  = "piimage-ota.json"
	ConfigFile = "config.txt"
	TryBoot    = "tryboot.txt"
	tempSuffix = imgota.TempSuffix
)

// Outcomes of an update.
const (
	ResultCommitted  = "committed"
	ResultRolledBack = "rolled-back"
)

// DefaultMaxBoots is how many times a trial slot may start without
// committing before the init rolls it back (a crash loop).
const DefaultMaxBoots = 3

// State is the content of StateFile.
type State struct {
	// Trial is the trial in progress; nil when none.
	Trial *Trial `json:"trial,omitempty"`
	// Last is the outcome of the last update that ended.
	Last *Outcome `json:"last,omitempty"`
}

// Trial is a slot on trial.
type Trial struct {
	// ID names the update (the client waits for its outcome).
	ID              string `json:"id"`
	Slot            string `json:"slot"`
	Previous        string `json:"previous"`
	Version         string `json:"version"`
	PreviousVersion string `json:"previous_version"`
	// TryBoot says the trial boots through the firmware's tryboot.txt;
	// otherwise config.txt names the trial slot until a rollback.
	TryBoot bool `json:"tryboot"`
	// Boots counts the starts of the trial slot so far.
	Boots    int `json:"boots"`
	MaxBoots int `json:"max_boots"`
}

// Outcome is how an update ended.
type Outcome struct {
	ID      string `json:"id"`
	Slot    string `json:"slot"`
	Version string `json:"version"`
	// Result is ResultCommitted or ResultRolledBack.
	Result string `json:"result"`
	// Reason says why it was rolled back.
	Reason string `json:"reason,omitempty"`
}

// ParseState decodes StateFile strictly.
func ParseState(b []byte) (State, error) {
	var s State
	if len(b) > 64<<10 {
		return s, errors.New("parsing the OTA state: larger than 64 KiB")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return State{}, fmt.Errorf("parsing the OTA state: %w", err)
	}
	if dec.More() {
		return State{}, errors.New("parsing the OTA state: data after the JSON object")
	}
	if t := s.Trial; t != nil {
		if _, err := imgota.SlotPartition(t.Slot); err != nil || t.Previous != imgota.Other(t.Slot) {
			return State{}, fmt.Errorf("parsing the OTA state: trial slot %q, previous %q", t.Slot, t.Previous)
		}
		if t.Boots < 0 || t.MaxBoots < 1 {
			return State{}, fmt.Errorf("parsing the OTA state: boots %d of %d", t.Boots, t.MaxBoots)
		}
	}
	if o := s.Last; o != nil && o.Result != ResultCommitted && o.Result != ResultRolledBack {
		return State{}, fmt.Errorf("parsing the OTA state: result %q", o.Result)
	}
	return s, nil
}

// Marshal encodes the state.
func (s State) Marshal() []byte {
	b, _ := json.MarshalIndent(s, "", "  ")
	return append(b, '\n')
}

// readState reads StateFile; a missing file is the zero State.
func readState(d Dir) (State, error) {
	b, err := d.ReadFile(StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("reading %s: %w", StateFile, err)
	}
	return ParseState(b)
}

// Decision is what the init does at boot with the OTA state.
type Decision int

const (
	// Normal: no trial; boot as usual.
	Normal Decision = iota
	// InTrial: this boot is a trial of the booted slot; run the health
	// checks, then Commit or Rollback.
	InTrial
	// RollBack: the trial slot started too often without committing;
	// roll back and reboot now.
	RollBack
	// TrialLost: the node booted the previous slot during a trial (the
	// firmware fell back, or power was lost before the trial boot); the
	// update is recorded as rolled back and the boot goes on.
	TrialLost
)

func (d Decision) String() string {
	return [...]string{"normal", "trial", "roll back", "trial lost"}[d]
}

// Decide is the boot-time step of the trial state machine: from the state
// on the card and the slot that booted, it returns the decision, the state
// to record and, for RollBack and TrialLost, the reason. It is a pure
// function; Agent.Boot applies it.
func Decide(s State, booted string) (State, Decision, string) {
	t := s.Trial
	if t == nil {
		return s, Normal, ""
	}
	if booted != t.Slot {
		reason := fmt.Sprintf("the node started slot %s, not the trial slot %s: the trial boot did not reach the init (the firmware fell back, or the node restarted before the trial)", booted, t.Slot)
		return State{Last: &Outcome{ID: t.ID, Slot: t.Slot, Version: t.Version, Result: ResultRolledBack, Reason: reason}}, TrialLost, reason
	}
	next := *t
	next.Boots++
	if next.Boots > next.MaxBoots {
		reason := fmt.Sprintf("slot %s (%s) started %d times without passing its health checks (a crash loop)", t.Slot, t.Version, t.Boots)
		return State{Trial: &next, Last: s.Last}, RollBack, reason
	}
	return State{Trial: &next, Last: s.Last}, InTrial, ""
}
