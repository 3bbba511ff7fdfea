package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/services/admin"
	"github.com/piimage/piimage/services/ota"
	"golang.org/x/sys/unix"
)

// Paths of the OTA part in PID 1 mode.
const (
	// otaPublicKey holds the keys an update must be signed with; the
	// build bakes it into the root (rootfs.OTAPublicKeyPath).
	otaPublicKey = "/piimage/ota.pub"
	adminCreds   = "/data/" + admin.CredentialsDir
)

// otaStep loads the admin credential and the update agent, then applies
// the trial state machine: it counts a trial boot, rolls a crash-looping
// trial back (and reboots at once), or records a trial that never
// started. It runs right after the partitions are mounted, so that a
// trial whose init fails later still counts its boots.
func (b *boot) otaStep() error {
	o := &otaNode{con: b.con, log: b.log}
	b.ota = o
	var errs []error
	if c, err := admin.LoadCredentials(adminCreds); err != nil {
		errs = append(errs, fmt.Errorf("no HTTPS admin API (plain /status and /health only): %w", err))
	} else {
		o.creds = c
	}
	rel, err := readRelease(releaseFile)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	o.setRelease(rel)
	pem, err := os.ReadFile(otaPublicKey)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.Join(append(errs, fmt.Errorf("updates disabled: the image has no %s", otaPublicKey))...)
	}
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	keys, err := imgota.ParsePublicKeys(pem)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("updates disabled: %w", err))...)
	}
	dir, err := ota.NewOSDir("/boot")
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("updates disabled: %w", err))...)
	}
	disk := b.disk
	o.agent = &ota.Agent{
		Boot: dir,
		Root: func(slot string) (ota.Device, error) {
			n, err := imgota.SlotPartition(slot)
			if err != nil {
				return nil, err
			}
			return ota.OpenFileDevice("/dev/" + PartitionDevice(disk, n))
		},
		Keys:   keys,
		Board:  rel.Board,
		Booted: b.root.Slot(),
		DiskID: b.root.DiskID,
		Log:    b.log,
	}
	reboot, err := o.onBoot()
	if reboot {
		b.shutdown(actionReboot, nil)
	}
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reboot restarts or powers off; a restart that an update asked to be a
// tryboot one is (Pi 4: the firmware boots tryboot.txt once).
func (b *boot) reboot(cmd int) error {
	if cmd == unix.LINUX_REBOOT_CMD_RESTART && b.ota != nil && b.ota.tryboot.Load() {
		b.con.say("reboot with tryboot")
		if err := ota.RebootTryboot(); err != nil {
			b.con.say("reboot with tryboot: %v; plain reboot", err)
		}
	}
	return unix.Reboot(cmd)
}
