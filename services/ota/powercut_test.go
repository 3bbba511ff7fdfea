package ota

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	imgota "github.com/piimage/piimage/image/ota"
)

// guardCard fails the test when the update writes into the slot that
// config.txt or tryboot.txt boots.
func guardCard(t *testing.T, c *card) {
	check := func(slot string) {
		for _, f := range []string{ConfigFile, TryBoot} {
			if s, _ := imgota.ConfigSlot(string(c.boot.cur.files[f])); s == slot {
				t.Fatalf("writing slot %s while %s boots it", slot, f)
			}
		}
	}
	c.boot.guard = func(op fsOp) {
		for _, slot := range []string{"a", "b"} {
			if strings.HasPrefix(op.name, imgota.SlotDir(slot)+"/") && op.kind != "remove" || op.kind == "rename" && strings.HasPrefix(op.to, imgota.SlotDir(slot)+"/") {
				check(slot)
			}
		}
	}
	for _, d := range c.devs {
		d.guard = check
	}
}

// lifeAfter powers the card s up again and lets the firmware and the init
// do their parts: the firmware must boot a complete slot holding one of
// versions, and so must every path the init can take from there (commit,
// roll back, crash-loop rollback). The last of versions, the new one,
// must run on trial or committed.
func lifeAfter(s cardState, key ed25519.PrivateKey, versions ...string) error {
	newest := versions[len(versions)-1]
	boot := func(s cardState) (string, error) {
		slot := firmware(s, false)
		v, err := bootable(s, slot)
		if err != nil {
			return "", fmt.Errorf("the firmware boots slot %q, which is not bootable: %v\ncard:\n%s", slot, err, s.boot.listing())
		}
		if !slices.Contains(versions, v) {
			return "", fmt.Errorf("slot %s holds %s, want one of %v", slot, v, versions)
		}
		return slot, nil
	}
	slot, err := boot(s)
	if err != nil {
		return err
	}
	// A slot with a manifest is intact, booted or not: the agent trusts
	// manifests when it reuses files.
	for _, other := range []string{"a", "b"} {
		if _, ok := s.boot.files[imgota.SlotDir(other)+"/"+imgota.ManifestFile]; ok {
			if _, err := bootable(s, other); err != nil {
				return fmt.Errorf("slot %s has a manifest but is not intact: %v", other, err)
			}
		}
	}
	c := s.mount(-1)
	d, tr, _, err := c.agent(slot, key).OnBoot()
	if err != nil {
		return fmt.Errorf("OnBoot: %v", err)
	}
	// The new version runs only on trial or once committed.
	if m, _ := readSlotManifest(c.boot, slot); d == Normal && m.Version == newest {
		if st, _ := readState(c.boot); st.Last == nil || st.Last.Result != ResultCommitted || st.Last.Version != newest {
			return fmt.Errorf("slot %s runs %s without a trial or a commit (state %+v)", slot, newest, st)
		}
	}
	switch d {
	case RollBack:
		_, err := boot(c.state())
		return err
	case InTrial:
		for _, commit := range []bool{true, false} {
			c2 := c.state().mount(-1)
			a := c2.agent(slot, key)
			if commit {
				err = a.Commit(*tr)
			} else {
				err = a.Rollback(*tr, "test")
			}
			if err != nil {
				return fmt.Errorf("commit %v: %v", commit, err)
			}
			got, err := boot(c2.state())
			if err != nil {
				return fmt.Errorf("after commit=%v: %v", commit, err)
			}
			if want := map[bool]string{true: tr.Slot, false: tr.Previous}[commit]; got != want {
				return fmt.Errorf("after commit=%v the firmware boots %s, want %s", commit, got, want)
			}
		}
	}
	return nil
}

// cutEverywhere runs op on a card with state s once without a limit to
// find its cut points (before every write, sync, rename, create, remove;
// in the middle and before the last byte of every write), then again with
// the power cut at each, checking the card after each cut and each choice
// of surviving writes with check.
func cutEverywhere(t *testing.T, s cardState, op func(c *card) error, check func(s cardState) error) int {
	t.Helper()
	full := s.mount(-1)
	if err := op(full); err != nil {
		t.Fatalf("without a cut: %v", err)
	}
	total := full.p.spent
	points := slices.Compact(slices.Sorted(slices.Values(full.p.cuts)))
	cuts := 0
	for _, n := range points {
		c := s.mount(n)
		guardCard(t, c)
		err := op(c)
		if err == nil {
			t.Fatalf("cut after %d of %d units: no error", n, total)
		}
		if !errors.Is(err, errPowerCut) {
			t.Fatalf("cut after %d of %d units: %v, want the power cut", n, total, err)
		}
		for k, keep := range survivors(c.pending()) {
			if err := check(c.afterCut(keep)); err != nil {
				t.Fatalf("cut after %d of %d units, survivor set %d of the %d pending writes: %v", n, total, k, c.pending(), err)
			}
		}
		cuts++
	}
	return cuts
}

// TestPowerCutDuringUpdate cuts the power at every point of an update's
// writes: the card must boot v1 or v2 afterwards, whatever subset of the
// unsynced writes survived.
func TestPowerCutDuringUpdate(t *testing.T) {
	key := testKey(1)
	for _, tc := range []struct {
		name    string
		tryboot bool
		old     bool // slot b holds v0 before the update
		omit    bool // the payload omits what the node has
	}{
		{"empty slot", false, false, false},
		{"old slot", false, true, false},
		{"copies and keeps", false, true, true},
		{"tryboot", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := func(m *imgota.Manifest) { m.TryBoot = tc.tryboot }
			v0 := makeRelease(t, "v0", "k", key, tb)
			v1 := makeRelease(t, "v1", "k", key, tb)
			v2 := makeRelease(t, "v2", "k2", key, tb)
			var old *release
			if tc.old {
				old = &v0
			}
			s := newCardState(t, v1, old)
			omit := func(imgota.File) bool { return false }
			if tc.omit {
				v2 = makeRelease(t, "v2", "k", key, tb)
				omit = func(f imgota.File) bool { return f.Path != "release.json" }
			}
			payload := v2.payload(t, omit)
			if tc.omit {
				// The root goes as a delta too (of one chunk, inline).
				c := s.mount(-1)
				_, base, err := c.agent("a", key).RootChunks()
				if err != nil {
					t.Fatal(err)
				}
				payload = v2.deltaPayload(t, omit, base)
			}
			cuts := cutEverywhere(t, s, func(c *card) error {
				_, err := c.agent("a", key).Apply(context.Background(), strings.NewReader(string(payload)), nil)
				return err
			}, func(s cardState) error {
				return lifeAfter(s, key, "v1", "v2")
			})
			t.Logf("%d cut points", cuts)
		})
	}
}

// TestPowerCutDuringTrial cuts the power during the init's trial steps:
// counting the boot, committing, rolling back.
func TestPowerCutDuringTrial(t *testing.T) {
	key := testKey(1)
	for _, tryboot := range []bool{false, true} {
		tb := func(m *imgota.Manifest) { m.TryBoot = tryboot }
		v1 := makeRelease(t, "v1", "k1", key, tb)
		v2 := makeRelease(t, "v2", "k2", key, tb)
		c := newCardState(t, v1, nil).mount(-1)
		if _, err := apply(t, c.agent("a", key), v2.payload(t, nil)); err != nil {
			t.Fatal(err)
		}
		armed := c.state()
		// A node in a crash loop: the trial has used its boots.
		looping := armed.clone()
		st, _ := ParseState(looping.boot.files[StateFile])
		st.Trial.Boots = st.Trial.MaxBoots
		looping.boot.files[StateFile] = st.Marshal()
		check := func(s cardState) error { return lifeAfter(s, key, "v1", "v2") }

		for _, tc := range []struct {
			name string
			s    cardState
			op   func(a *Agent) error
		}{
			{"count the boot", armed, func(a *Agent) error { _, _, _, err := a.OnBoot(); return err }},
			{"commit", armed, func(a *Agent) error {
				_, tr, _, err := a.OnBoot()
				if err != nil {
					return err
				}
				return a.Commit(*tr)
			}},
			{"roll back", armed, func(a *Agent) error {
				_, tr, _, err := a.OnBoot()
				if err != nil {
					return err
				}
				return a.Rollback(*tr, "unhealthy")
			}},
			{"crash loop", looping, func(a *Agent) error {
				d, _, _, err := a.OnBoot()
				if err == nil && d != RollBack {
					return fmt.Errorf("decision %v", d)
				}
				return err
			}},
		} {
			t.Run(fmt.Sprintf("tryboot=%v/%s", tryboot, tc.name), func(t *testing.T) {
				if firmware(tc.s, tryboot) != "b" {
					t.Fatal("the trial reboot does not boot b")
				}
				cutEverywhere(t, tc.s, func(c *card) error { return tc.op(c.agent("b", key)) }, check)
			})
		}
	}
}
