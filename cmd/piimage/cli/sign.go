package cli

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/image/ota/otaimage"
	"github.com/piimage/piimage/services/ota"
)

func signCommand() command {
	return command{
		name:  "sign",
		short: "sign an image's update payload with a key (--key FILE IMAGE)",
		run:   runSign,
	}
}

func runSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("sign", "sign --key FILE IMAGE", stderr)
	key := fset.String("key", "", "signing key (default: .keys/ota.key in the source tree)")
	src := fset.String("src", "", "piimage source tree (default: found from the current folder)")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &usageError{"sign: name one image file"}
	}
	kp := *key
	if kp == "" {
		d, err := keysDir("", *src)
		if err != nil {
			return err
		}
		kp = filepath.Join(d, keyFile)
	}
	b, err := readSecret(kp)
	if err != nil {
		return fmt.Errorf("reading the signing key: %w (make one with piimage keygen)", err)
	}
	priv, err := imgota.ParsePrivateKey(b)
	if err != nil {
		return err
	}
	st, err := os.Stat(pos[0])
	if err != nil {
		return err
	}
	m, err := otaimage.Sign(pos[0], priv, st.ModTime().UTC())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed %s: %s for %s, %d files and a %.1f MB root, key %s\n", pos[0], m.Version, m.Board,
		len(m.Files), float64(m.Root.Size)/1e6, imgota.KeyID(priv.Public().(ed25519.PublicKey)))
	fmt.Fprintln(stdout, "nodes accept it only if their image trusts this key (its ota.pub)")
	return nil
}

// describeSlotSignature tells, for inspect, how slot's folder is signed
// and whether the image's bytes match its manifest.
func describeSlotSignature(w io.Writer, bfs fs.FS, img *otaimage.Image, slot string) {
	dir := "slot-" + slot
	mb, err := fs.ReadFile(bfs, path.Join(dir, imgota.ManifestFile))
	if err != nil || len(mb) == 0 {
		fmt.Fprintf(w, "     signed   no (no manifest)\n")
		return
	}
	m, err := imgota.ParseManifest(mb)
	if err != nil {
		fmt.Fprintf(w, "     signed   bad manifest: %v\n", err)
		return
	}
	sb, _ := fs.ReadFile(bfs, path.Join(dir, imgota.SignatureFile))
	sig, err := imgota.ParseSignature(sb)
	if err != nil {
		fmt.Fprintf(w, "     signed   bad signature file: %v\n", err)
		return
	}
	check := ""
	if img != nil {
		if err := img.CheckSlot(slot, m); err != nil {
			check = "; contents DO NOT MATCH: " + err.Error()
		} else {
			check = "; contents match (root and every file hashed)"
		}
	}
	fmt.Fprintf(w, "     signed   key %s, %d files + %.1f MB root, manifest version %s, tryboot %v%s\n",
		sig.KeyID, len(m.Files), float64(m.Root.Size)/1e6, m.Version, m.TryBoot, check)
}

// describeOTAState tells, for inspect, what tryboot.txt boots and the
// update state on the card (a trial in progress, the last outcome).
func describeOTAState(w io.Writer, bfs fs.FS) {
	if tb, err := fs.ReadFile(bfs, imgota.TryBootName); err == nil {
		if s, ok := imgota.ConfigSlot(string(tb)); ok {
			fmt.Fprintf(w, "  tryboot.txt boots slot-%s/ (read once after a \"0 tryboot\" reboot, Pi 4)\n", s)
		}
	}
	b, err := fs.ReadFile(bfs, ota.StateFile)
	if err != nil {
		fmt.Fprintf(w, "  no update has run on this card\n")
		return
	}
	st, err := ota.ParseState(b)
	if err != nil {
		fmt.Fprintf(w, "  update state: %v\n", err)
		return
	}
	if t := st.Trial; t != nil {
		fmt.Fprintf(w, "  TRIAL: slot-%s/ (%s) on trial, %d of %d boots used, falls back to slot-%s/ (%s)\n",
			t.Slot, t.Version, t.Boots, t.MaxBoots, t.Previous, t.PreviousVersion)
	}
	if l := st.Last; l != nil {
		fmt.Fprintf(w, "  last update: %s %s to slot-%s/", l.Result, l.Version, l.Slot)
		if l.Reason != "" {
			fmt.Fprintf(w, " (%s)", l.Reason)
		}
		fmt.Fprintln(w)
	}
}
