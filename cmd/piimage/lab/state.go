package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the name of a lab's state file in its folder.
const StateFile = "state.json"

// State is what a lab made and what it did since: written before each
// step that creates something, so Down can remove it even when the lab
// crashed halfway.
type State struct {
	Plan    *Plan     `json:"plan"`
	Created time.Time `json:"created"`
	// Init is the init binary the nodes run.
	Init string `json:"init"`
	// Namespaces are the namespaces created, in order.
	Namespaces []string `json:"namespaces"`
	// Procs are the nodes' init processes by hostname.
	Procs map[string]Proc `json:"procs"`
	// Faults are the faults in force, in the order they were made.
	Faults []Fault `json:"faults"`
	// StatsPassword is the password of the stats page the lab added to
	// load balancers (user StatsUser).
	StatsPassword string `json:"stats_password"`
	// Up is set once every node was started.
	Up bool `json:"up"`
}

// Proc is a process the lab started, told apart from a later process
// with the same PID by its start time (clock ticks after boot, field 22
// of /proc/PID/stat).
type Proc struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// Fault is one fault the lab injected and has not healed.
type Fault struct {
	Node string    `json:"node"`
	How  string    `json:"how"`
	At   time.Time `json:"at"`
}

// statePath returns the state file of the lab in dir.
func statePath(dir string) string { return filepath.Join(dir, StateFile) }

// Save writes the state file atomically, readable by root only (it holds
// the stats password).
func (s *State) Save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the lab state: %w", err)
	}
	if err := os.MkdirAll(s.Plan.Dir, 0o700); err != nil {
		return fmt.Errorf("creating the lab folder: %w", err)
	}
	return writeAtomic(statePath(s.Plan.Dir), append(b, '\n'), 0o600)
}

// ErrNoLab is returned by LoadState when no lab state file exists.
var ErrNoLab = errors.New("no lab is up")

// LoadState reads the state of the lab in dir.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (no %s)", ErrNoLab, statePath(dir))
	}
	if err != nil {
		return nil, fmt.Errorf("reading the lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading the lab state %s: %w", statePath(dir), err)
	}
	if s.Plan == nil {
		return nil, fmt.Errorf("reading the lab state %s: no plan", statePath(dir))
	}
	if s.Procs == nil {
		s.Procs = map[string]Proc{}
	}
	return &s, nil
}

// addNamespace records ns before it is created.
func (s *State) addNamespace(ns string) error {
	for _, x := range s.Namespaces {
		if x == ns {
			return nil
		}
	}
	s.Namespaces = append(s.Namespaces, ns)
	return s.Save()
}

// addFault records a fault in force.
func (s *State) addFault(f Fault) error {
	s.Faults = append(s.Faults, f)
	return s.Save()
}

// faultsOf returns the faults in force on node ("" for all).
func (s *State) faultsOf(node string) []Fault {
	var out []Fault
	for _, f := range s.Faults {
		if node == "" || f.Node == node {
			out = append(out, f)
		}
	}
	return out
}

// dropFaults forgets the faults of node ("" for all) and saves.
func (s *State) dropFaults(node string) error {
	var keep []Fault
	for _, f := range s.Faults {
		if node != "" && f.Node != node {
			keep = append(keep, f)
		}
	}
	s.Faults = keep
	return s.Save()
}
