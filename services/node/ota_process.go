package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/ota"
)

// Process mode plays the firmware on a card folder (imgota.CardBoot and
// the rest; --card DIR): it starts the slot config.txt names
// (tryboot.txt's, once, after a tryboot reboot), reports that slot's
// release.json, and "reboots" by stopping its services and re-executing
// itself (the PID stays). cmd/piimage/lab makes card folders from images
// (otaimage.WriteCard).

// processCard is an opened card folder.
type processCard struct {
	dir     string
	slot    string
	release admin.Release
}

// openCard plays the firmware on the card folder dir: it picks the slot to
// start and reads its release. It fails when no slot can start, as a
// firmware with no bootable slot would.
func openCard(dir string) (*processCard, error) {
	c := &processCard{dir: dir}
	cfg := "config.txt"
	flag := filepath.Join(dir, imgota.CardTryboot)
	if _, err := os.Stat(flag); err == nil {
		cfg = "tryboot.txt"
		// The firmware boots tryboot.txt once; a later reboot is a plain one.
		if err := os.Remove(flag); err != nil {
			return nil, fmt.Errorf("card %s: clearing the tryboot flag: %w", dir, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, imgota.CardBoot, cfg))
	if err != nil {
		return nil, fmt.Errorf("card %s: %w", dir, err)
	}
	slot, ok := imgota.ConfigSlot(string(b))
	if !ok {
		return nil, fmt.Errorf("card %s: %s names no slot (os_prefix=slot-a/ or slot-b/)", dir, cfg)
	}
	c.slot = slot
	c.release, err = readRelease(filepath.Join(dir, imgota.CardBoot, imgota.SlotDir(slot), "release.json"))
	if err != nil {
		return nil, fmt.Errorf("card %s: %w", dir, err)
	}
	if c.release.Version == "" {
		return nil, fmt.Errorf("card %s: slot %s has no release.json: not a bootable slot", dir, slot)
	}
	return c, nil
}

// diskID reads the MBR disk identifier from the running slot's cmdline.txt
// (root=PARTUUID=<id>-02), which the agent needs to write the other
// slot's.
func (c *processCard) diskID() (uint32, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, imgota.CardBoot, imgota.SlotDir(c.slot), "cmdline.txt"))
	if err != nil {
		return 0, err
	}
	root, err := ParseRoot(string(b))
	if err != nil {
		return 0, fmt.Errorf("cmdline.txt: %w", err)
	}
	return root.DiskID, nil
}

// otaNode builds the update agent over the card and runs this start's
// step of the trial state machine. reboot says the caller must restart at
// once (a crash-looping trial was rolled back). Problems that only
// disable updates come back in err with a usable node.
func (c *processCard) otaNode(con console, r *instance) (o *otaNode, reboot bool, err error) {
	o = &otaNode{con: con, log: r.log}
	o.setRelease(c.release)
	var errs []error
	if creds, err := admin.LoadCredentials(filepath.Join(c.dir, imgota.CardAdmin)); err != nil {
		errs = append(errs, fmt.Errorf("no HTTPS admin API: %w", err))
	} else {
		o.creds = creds
	}
	pem, err := os.ReadFile(filepath.Join(c.dir, imgota.CardKeys))
	if errors.Is(err, fs.ErrNotExist) {
		return o, false, errors.Join(append(errs, fmt.Errorf("updates disabled: the card has no %s", imgota.CardKeys))...)
	}
	if err != nil {
		return o, false, errors.Join(append(errs, err)...)
	}
	keys, err := imgota.ParsePublicKeys(pem)
	if err != nil {
		return o, false, errors.Join(append(errs, fmt.Errorf("updates disabled: %w", err))...)
	}
	id, err := c.diskID()
	if err != nil {
		return o, false, errors.Join(append(errs, fmt.Errorf("updates disabled: slot %s: %w", c.slot, err))...)
	}
	dir, err := ota.NewOSDir(filepath.Join(c.dir, imgota.CardBoot))
	if err != nil {
		return o, false, errors.Join(append(errs, fmt.Errorf("updates disabled: %w", err))...)
	}
	o.agent = &ota.Agent{
		Boot: dir,
		Root: func(slot string) (ota.Device, error) {
			if _, err := imgota.SlotPartition(slot); err != nil {
				return nil, err
			}
			return ota.OpenFileDevice(filepath.Join(c.dir, imgota.CardRoot(slot)))
		},
		Keys:   keys,
		Board:  c.release.Board,
		Booted: c.slot,
		DiskID: id,
		Log:    r.log,
	}
	reboot, err = o.onBoot()
	return o, reboot, errors.Join(append(errs, err)...)
}

// restart prepares the card for the next start: a tryboot reboot leaves
// the flag the firmware stand-in reads.
func (c *processCard) restart(o *otaNode) error {
	if o == nil || !o.tryboot.Load() {
		return nil
	}
	return os.WriteFile(filepath.Join(c.dir, imgota.CardTryboot), nil, 0o644)
}
