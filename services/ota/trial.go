package ota

import (
	"fmt"

	imgota "github.com/piimage/piimage/image/ota"
)

// OnBoot applies the boot-time step of the trial state machine (Decide) to
// the card: it counts a trial boot, rolls a crash-looping trial back, or
// records a trial that never started. On RollBack the caller must reboot
// at once; on InTrial it must run the health checks, then call Commit or
// Rollback. A state file that cannot be read counts as no trial (and the
// error says so).
func (a *Agent) OnBoot() (Decision, *Trial, string, error) {
	st, err := readState(a.Boot)
	if err != nil {
		return Normal, nil, "", fmt.Errorf("%w; booting without a trial", err)
	}
	next, d, reason := Decide(st, a.Booted)
	switch d {
	case InTrial:
		if err := writeAtomic(a.Boot, StateFile, next.Marshal()); err != nil {
			return d, next.Trial, "", fmt.Errorf("counting the trial boot: %w", err)
		}
		a.log().Info("trial boot", "slot", next.Trial.Slot, "version", next.Trial.Version, "boot", next.Trial.Boots, "of", next.Trial.MaxBoots)
		return d, next.Trial, "", nil
	case RollBack:
		return d, next.Trial, reason, a.Rollback(*next.Trial, reason)
	case TrialLost:
		t := st.Trial
		if err := a.pointAt(a.Booted, t.Slot, nil); err != nil {
			return d, t, reason, err
		}
		if err := writeAtomic(a.Boot, StateFile, next.Marshal()); err != nil {
			return d, t, reason, fmt.Errorf("recording the lost trial: %w", err)
		}
		a.log().Warn("trial lost", "slot", t.Slot, "version", t.Version, "reason", reason)
		return d, t, reason, nil
	}
	return d, nil, "", nil
}

// Commit makes the trial slot the one config.txt boots, then records the
// outcome.
func (a *Agent) Commit(t Trial) error {
	m, err := readSlotManifest(a.Boot, t.Slot)
	if err != nil {
		return fmt.Errorf("committing slot %s: its manifest: %w", t.Slot, err)
	}
	if err := a.pointAt(t.Slot, t.Previous, m); err != nil {
		return fmt.Errorf("committing slot %s: %w", t.Slot, err)
	}
	st, _ := readState(a.Boot)
	st.Trial = nil
	st.Last = &Outcome{ID: t.ID, Slot: t.Slot, Version: t.Version, Result: ResultCommitted}
	if err := writeAtomic(a.Boot, StateFile, st.Marshal()); err != nil {
		return fmt.Errorf("recording the commit: %w", err)
	}
	a.log().Info("committed", "slot", t.Slot, "version", t.Version)
	return nil
}

// Rollback makes the previous slot the one config.txt boots, then records
// the outcome with reason. The caller reboots.
func (a *Agent) Rollback(t Trial, reason string) error {
	m, _ := readSlotManifest(a.Boot, t.Previous)
	if err := a.pointAt(t.Previous, t.Slot, m); err != nil {
		return fmt.Errorf("rolling back to slot %s: %w", t.Previous, err)
	}
	st, _ := readState(a.Boot)
	st.Trial = nil
	st.Last = &Outcome{ID: t.ID, Slot: t.Slot, Version: t.Version, Result: ResultRolledBack, Reason: reason}
	if err := writeAtomic(a.Boot, StateFile, st.Marshal()); err != nil {
		return fmt.Errorf("recording the rollback: %w", err)
	}
	a.log().Warn("rolled back", "slot", t.Slot, "version", t.Version, "to", t.Previous, "reason", reason)
	return nil
}

// pointAt rewrites config.txt to boot slot (from m's config.txt when
// known, else the current one) unless it already does, and points
// tryboot.txt away from other.
func (a *Agent) pointAt(slot, other string, m *imgota.Manifest) error {
	cur, err := a.Boot.ReadFile(ConfigFile)
	if err != nil {
		return err
	}
	base := string(cur)
	if m != nil {
		base = m.ConfigTxt
	}
	want, err := imgota.ConfigFor(base, slot)
	if err != nil {
		return err
	}
	if s, ok := imgota.ConfigSlot(string(cur)); !ok || s != slot || (m != nil && string(cur) != want) {
		if err := writeAtomic(a.Boot, ConfigFile, []byte(want)); err != nil {
			return err
		}
	}
	if tb, err := a.Boot.ReadFile(TryBoot); err == nil {
		if s, _ := imgota.ConfigSlot(string(tb)); s == other {
			if err := writeAtomic(a.Boot, TryBoot, []byte(want)); err != nil {
				return err
			}
		}
	}
	return nil
}

// SlotInfo describes one slot for Status.
type SlotInfo struct {
	Slot    string `json:"slot"`
	Version string `json:"version,omitempty"`
	// Complete says the slot has a manifest (its files are not read).
	Complete bool `json:"complete"`
	// Config says config.txt boots it; Running says the node runs it.
	Config  bool `json:"config"`
	Running bool `json:"running"`
}

// Status is the agent's view for the admin API.
type Status struct {
	Board  string     `json:"board"`
	Booted string     `json:"booted"`
	Slots  []SlotInfo `json:"slots"`
	Trial  *Trial     `json:"trial,omitempty"`
	Last   *Outcome   `json:"last,omitempty"`
	// Error says what could not be read.
	Error string `json:"error,omitempty"`
}

// Status reads the slots and the state.
func (a *Agent) Status() Status {
	s := Status{Board: a.Board, Booted: a.Booted}
	cfgSlot := ""
	if b, err := a.Boot.ReadFile(ConfigFile); err == nil {
		cfgSlot, _ = imgota.ConfigSlot(string(b))
	}
	for _, slot := range []string{"a", "b"} {
		si := SlotInfo{Slot: slot, Config: slot == cfgSlot, Running: slot == a.Booted}
		if m, err := readSlotManifest(a.Boot, slot); err == nil {
			si.Complete, si.Version = true, m.Version
		}
		s.Slots = append(s.Slots, si)
	}
	st, err := readState(a.Boot)
	if err != nil {
		s.Error = err.Error()
	}
	s.Trial, s.Last = st.Trial, st.Last
	return s
}
