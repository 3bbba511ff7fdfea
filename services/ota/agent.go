package ota

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	imgota "github.com/piimage/piimage/image/ota"
)

// Agent writes updates into the inactive slot and runs the trial's disk
// steps. Set the fields, then call its methods; they are safe for
// concurrent use (one update at a time).
type Agent struct {
	// Boot is the boot partition. Required.
	Boot Dir
	// Root opens a slot's root partition. Required.
	Root OpenDevice
	// Keys are the public keys an update's signature must verify with
	// (the running root's /piimage/ota.pub).
	Keys []ed25519.PublicKey
	// Board is the running board's name; an update for another is refused.
	Board string
	// Booted is the slot the node runs ("a" or "b").
	Booted string
	// DiskID is the MBR disk identifier, for the new slot's cmdline.txt.
	DiskID uint32
	// MaxBoots is a trial's start limit; 0 means DefaultMaxBoots.
	MaxBoots int
	// NewID names an update; nil means 8 random bytes in hex.
	NewID func() string
	// Log receives progress; nil means slog.Default().
	Log *slog.Logger

	mu sync.Mutex

	chunksMu   sync.Mutex
	chunksSize int64
	chunks     []imgota.Digest
}

// RefusedError is an update refused before anything was written: a bad
// or missing signature, another board, a trial in progress, a payload
// that does not fit.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "update refused: " + e.Reason }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// Progress reports an update's phase and bytes.
type Progress struct {
	Phase       string
	Done, Total int64
}

// Result describes an update written and armed for its trial boot.
type Result struct {
	ID       string `json:"id"`
	Slot     string `json:"slot"`
	Version  string `json:"version"`
	Previous string `json:"previous_version"`
	KeyID    string `json:"key"`
	// TryBoot says the node must reboot with "0 tryboot"; otherwise a
	// plain reboot starts the trial (config.txt names the new slot).
	TryBoot bool `json:"tryboot"`
	// Received, Copied and Kept count the slot's bytes by where they came
	// from: the stream, the running slot, the target slot already.
	Received int64 `json:"received"`
	Copied   int64 `json:"copied"`
	Kept     int64 `json:"kept"`
	// Written is every byte written to the card, verification excluded.
	Written int64 `json:"written"`
	// Took is how long writing and verifying took.
	Took time.Duration `json:"took_ns"`
}

func (a *Agent) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}

// Apply reads a payload stream from r, refuses it (a *RefusedError, with
// nothing written) unless it is signed by a trusted key, for this board,
// and fits; then writes the inactive slot, verifies it, and arms the trial
// boot. The caller reboots the node afterwards (RebootTryboot when
// Result.TryBoot).
func (a *Agent) Apply(ctx context.Context, r io.Reader, progress func(Progress)) (*Result, error) {
	if !a.mu.TryLock() {
		return nil, refused("another update is being written")
	}
	defer a.mu.Unlock()
	if progress == nil {
		progress = func(Progress) {}
	}
	start := time.Now()
	pr, err := imgota.NewReader(r)
	if err != nil {
		return nil, refused("%v", err)
	}
	keyID, err := imgota.Verify(a.Keys, pr.ManifestBytes, pr.Signature)
	if err != nil {
		return nil, refused("%v", err)
	}
	m := pr.Manifest
	if m.Board != a.Board {
		return nil, refused("the update is for board %s; this node is a %s", m.Board, a.Board)
	}
	st, err := readState(a.Boot)
	if err != nil {
		return nil, refused("%v", err)
	}
	if t := st.Trial; t != nil {
		return nil, refused("slot %s (%s) is on trial; it must commit or roll back first", t.Slot, t.Version)
	}
	cfg, err := a.Boot.ReadFile(ConfigFile)
	if err != nil {
		return nil, refused("reading %s: %v", ConfigFile, err)
	}
	if s, ok := imgota.ConfigSlot(string(cfg)); !ok || s != a.Booted {
		return nil, refused("%s boots slot %q but the node runs slot %s: boot the slot config.txt names first", ConfigFile, s, a.Booted)
	}
	target := imgota.Other(a.Booted)
	cmdline, err := imgota.CmdlineFor(m.Cmdline, a.DiskID, target)
	if err != nil {
		return nil, refused("%v", err)
	}
	newCfg, err := imgota.ConfigFor(m.ConfigTxt, target)
	if err != nil {
		return nil, refused("%v", err)
	}
	dev, err := a.Root(target)
	if err != nil {
		return nil, fmt.Errorf("opening root slot %s: %w", target, err)
	}
	defer dev.Close()
	if m.Root.Size > dev.Size() {
		return nil, refused("the root filesystem is %d bytes; root slot %s holds %d", m.Root.Size, target, dev.Size())
	}
	active, _ := readSlotManifest(a.Boot, a.Booted)
	previous, _ := readSlotManifest(a.Boot, target)
	id := a.newID()
	res := &Result{ID: id, Slot: target, Version: m.Version, KeyID: keyID, TryBoot: m.TryBoot}
	if active != nil {
		res.Previous = active.Version
	}
	a.log().Info("update accepted", "id", id, "version", m.Version, "slot", target, "key", keyID, "bytes", m.TotalSize())

	w := &slotWriter{a: a, ctx: ctx, m: m, target: target, active: active, previous: previous, res: res, progress: progress, total: m.TotalSize()}
	if err := w.prepare(string(cfg)); err != nil {
		return nil, err
	}
	if adev, err := a.Root(a.Booted); err == nil {
		// A root delta copies chunks of the running root.
		defer adev.Close()
		pr.Base = adev
	}
	e, err := pr.Next()
	if err != nil {
		return nil, err
	}
	if err := w.root(e, dev); err != nil {
		return nil, err
	}
	res.Received += pr.Received
	if e.Delta {
		res.Copied += pr.Copied
	}
	if err := w.files(pr); err != nil {
		return nil, err
	}
	if _, err := pr.Next(); err != io.EOF {
		return nil, fmt.Errorf("reading the payload's end: %v", err)
	}
	if err := w.finish(cmdline, pr.ManifestBytes, pr.Signature.Marshal()); err != nil {
		return nil, err
	}

	// Arm the trial: the state first, then the switch.
	maxBoots := a.MaxBoots
	if maxBoots == 0 {
		maxBoots = DefaultMaxBoots
	}
	st.Trial = &Trial{ID: id, Slot: target, Previous: a.Booted, Version: m.Version, PreviousVersion: res.Previous, TryBoot: m.TryBoot, MaxBoots: maxBoots}
	if err := writeAtomic(a.Boot, StateFile, st.Marshal()); err != nil {
		return nil, fmt.Errorf("recording the trial: %w", err)
	}
	switchFile := ConfigFile
	if m.TryBoot {
		switchFile = TryBoot
	}
	if err := writeAtomic(a.Boot, switchFile, []byte(newCfg)); err != nil {
		return nil, fmt.Errorf("pointing %s at slot %s: %w", switchFile, target, err)
	}
	res.Took = time.Since(start)
	a.log().Info("update written and verified; trial armed", "id", id, "slot", target, "version", m.Version,
		"received", res.Received, "copied", res.Copied, "kept", res.Kept, "took", res.Took.Round(time.Millisecond))
	return res, nil
}

func (a *Agent) newID() string {
	if a.NewID != nil {
		return a.NewID()
	}
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readSlotManifest reads and parses a slot's manifest; nil when the slot
// is incomplete or has none.
func readSlotManifest(d Dir, slot string) (*imgota.Manifest, error) {
	b, err := d.ReadFile(path.Join(imgota.SlotDir(slot), imgota.ManifestFile))
	if err != nil {
		return nil, err
	}
	return imgota.ParseManifest(b)
}

// slotWriter writes one slot.
type slotWriter struct {
	a        *Agent
	ctx      context.Context
	m        *imgota.Manifest
	target   string
	active   *imgota.Manifest // the running slot's, nil if unknown
	previous *imgota.Manifest // the target slot's before the update
	res      *Result
	progress func(Progress)
	done     int64
	total    int64
	// written lists the temporary files to verify and rename.
	written []imgota.File
}

func (w *slotWriter) dir() string { return imgota.SlotDir(w.target) }

// prepare points tryboot.txt away from the target, marks the target slot
// incomplete and clears what does not belong to the new slot.
func (w *slotWriter) prepare(cfg string) error {
	d := w.a.Boot
	if tb, err := d.ReadFile(TryBoot); err == nil {
		if s, _ := imgota.ConfigSlot(string(tb)); s == w.target {
			if err := writeAtomic(d, TryBoot, []byte(cfg)); err != nil {
				return fmt.Errorf("pointing %s at the running slot: %w", TryBoot, err)
			}
		}
	}
	if err := d.MkdirAll(w.dir()); err != nil {
		return err
	}
	for _, n := range []string{imgota.ManifestFile, imgota.SignatureFile} {
		if err := removeIfExists(d, path.Join(w.dir(), n)); err != nil {
			return fmt.Errorf("marking slot %s incomplete: %w", w.target, err)
		}
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("marking slot %s incomplete: %w", w.target, err)
	}
	w.progress(Progress{Phase: "clearing slot " + w.target})
	return w.clear(".")
}

// clear removes the target folder's files and folders that the new
// manifest does not list (temporary files included).
func (w *slotWriter) clear(sub string) error {
	d := w.a.Boot
	full := path.Join(w.dir(), sub)
	ents, err := d.ReadDir(full)
	if err != nil {
		return fmt.Errorf("listing %s: %w", full, err)
	}
	for _, e := range ents {
		rel := path.Join(sub, e.Name())
		if e.IsDir() {
			if err := w.clear(rel); err != nil {
				return err
			}
			if !w.listsFolder(rel) {
				if err := d.Remove(path.Join(w.dir(), rel)); err != nil {
					return fmt.Errorf("clearing slot %s: %w", w.target, err)
				}
			}
			continue
		}
		if _, ok := w.m.Lookup(rel); ok || strings.EqualFold(rel, imgota.CmdlineFile) {
			continue
		}
		if err := d.Remove(path.Join(w.dir(), rel)); err != nil {
			return fmt.Errorf("clearing slot %s: %w", w.target, err)
		}
	}
	return nil
}

func (w *slotWriter) listsFolder(rel string) bool {
	prefix := strings.ToLower(rel) + "/"
	for _, f := range w.m.Files {
		if strings.HasPrefix(strings.ToLower(f.Path), prefix) {
			return true
		}
	}
	return false
}

// root writes the root filesystem to the target partition, then reads it
// back.
func (w *slotWriter) root(e imgota.Entry, dev Device) error {
	w.progress(Progress{Phase: "writing root slot " + w.target, Done: w.done, Total: w.total})
	src := e.Data
	if !e.Inline && !e.Delta {
		adev, err := w.a.Root(w.a.Booted)
		if err != nil {
			return fmt.Errorf("opening the running root slot to copy from: %w", err)
		}
		defer adev.Close()
		src = io.NewSectionReader(adev, 0, e.Size)
	}
	h := sha256.New()
	n, err := copyCtx(w.ctx, io.NewOffsetWriter(dev, 0), io.TeeReader(src, h), e.Size, func(n int64) {
		w.progress(Progress{Phase: "writing root slot " + w.target, Done: w.done + n, Total: w.total})
	})
	if err != nil {
		return fmt.Errorf("writing root slot %s: %w", w.target, err)
	}
	// The stream's counters say what a delta received; Apply adds them.
	w.done += n
	w.res.Written += n
	if !e.Inline && !e.Delta {
		w.res.Copied += n
	}
	if imgota.Digest(h.Sum(nil)) != e.SHA256 {
		return fmt.Errorf("writing root slot %s: the %s root filesystem does not match the manifest's SHA-256", w.target, sourceName(e.Inline || e.Delta))
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("syncing root slot %s: %w", w.target, err)
	}
	w.progress(Progress{Phase: "verifying root slot " + w.target, Done: w.done, Total: w.total})
	if err := verifyReader(io.NewSectionReader(dev, 0, e.Size), e.SHA256); err != nil {
		return fmt.Errorf("verifying root slot %s after writing: %w", w.target, err)
	}
	return nil
}

func sourceName(inline bool) string {
	if inline {
		return "received"
	}
	return "copied"
}

func (w *slotWriter) count(inline, kept bool, n int64) {
	w.done += n
	switch {
	case kept:
		w.res.Kept += n
	case inline:
		w.res.Received += n
		w.res.Written += n
	default:
		w.res.Copied += n
		w.res.Written += n
	}
}

// files writes every slot file under a temporary name (or keeps the
// target's identical file), syncs, verifies each by reading it back, then
// renames them into place.
func (w *slotWriter) files(pr *imgota.Reader) error {
	d := w.a.Boot
	for range w.m.Files {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		e, err := pr.Next()
		if err != nil {
			return err
		}
		f := imgota.File{Path: e.Path, Size: e.Size, SHA256: e.SHA256}
		if !e.Inline && w.keep(f) {
			w.count(false, true, f.Size)
			continue
		}
		src := e.Data
		var rc io.ReadCloser
		if !e.Inline {
			if rc, err = w.localCopy(f); err != nil {
				return err
			}
			src = rc
		}
		err = w.writeTemp(path.Join(w.dir(), f.Path)+tempSuffix, src, f, e.Inline)
		if rc != nil {
			rc.Close()
		}
		if err != nil {
			return err
		}
		w.written = append(w.written, f)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing slot %s: %w", w.target, err)
	}
	w.progress(Progress{Phase: "verifying slot " + w.target, Done: w.done, Total: w.total})
	for _, f := range w.written {
		if err := verifyFile(d, path.Join(w.dir(), f.Path)+tempSuffix, f.SHA256); err != nil {
			return fmt.Errorf("verifying slot %s after writing: %w", w.target, err)
		}
	}
	for _, f := range w.written {
		final := path.Join(w.dir(), f.Path)
		if err := d.Rename(final+tempSuffix, final); err != nil {
			return fmt.Errorf("moving %s into place: %w", final, err)
		}
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing slot %s: %w", w.target, err)
	}
	return nil
}

// keep reports whether the target slot already holds f (its old manifest
// lists it at the same path, and its bytes hash right).
func (w *slotWriter) keep(f imgota.File) bool {
	if w.previous == nil {
		return false
	}
	old, ok := w.previous.Lookup(f.Path)
	if !ok || old.SHA256 != f.SHA256 || old.Size != f.Size {
		return false
	}
	return verifyFile(w.a.Boot, path.Join(w.dir(), f.Path), f.SHA256) == nil
}

// localCopy opens the running slot's file with f's hash.
func (w *slotWriter) localCopy(f imgota.File) (io.ReadCloser, error) {
	if w.active != nil {
		for _, af := range w.active.Files {
			if af.SHA256 == f.SHA256 && af.Size == f.Size {
				return w.a.Boot.Open(path.Join(imgota.SlotDir(w.a.Booted), af.Path))
			}
		}
	}
	return nil, fmt.Errorf("the payload omits %s, but the node has no file with its hash %s: send the whole payload", f.Path, f.SHA256)
}

func (w *slotWriter) writeTemp(name string, src io.Reader, f imgota.File, inline bool) error {
	d := w.a.Boot
	if err := d.MkdirAll(path.Dir(name)); err != nil {
		return err
	}
	out, err := d.Create(name)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := copyCtx(w.ctx, out, io.TeeReader(src, h), f.Size, func(n int64) {
		w.progress(Progress{Phase: "writing slot " + w.target, Done: w.done + n, Total: w.total})
	})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	w.count(inline, false, n)
	if imgota.Digest(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("writing %s: the %s bytes do not match the manifest's SHA-256", f.Path, sourceName(inline))
	}
	return nil
}

// finish writes cmdline.txt, then the signature and the manifest, which
// completes the slot.
func (w *slotWriter) finish(cmdline string, manifest, sig []byte) error {
	d := w.a.Boot
	if err := writeAtomic(d, path.Join(w.dir(), imgota.CmdlineFile), []byte(cmdline)); err != nil {
		return fmt.Errorf("writing the slot's cmdline.txt: %w", err)
	}
	if err := writeAtomic(d, path.Join(w.dir(), imgota.SignatureFile), sig); err != nil {
		return fmt.Errorf("writing the slot's signature: %w", err)
	}
	if err := writeAtomic(d, path.Join(w.dir(), imgota.ManifestFile), manifest); err != nil {
		return fmt.Errorf("writing the slot's manifest: %w", err)
	}
	return nil
}

// copyCtx copies exactly n bytes from src to dst in 1 MiB chunks, checking
// ctx and reporting progress between chunks.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader, n int64, progress func(int64)) (int64, error) {
	buf := make([]byte, 1<<20)
	var done int64
	for done < n {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		k, err := io.ReadFull(src, buf[:min(int64(len(buf)), n-done)])
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return done, werr
			}
			done += int64(k)
			progress(done)
		}
		if err != nil {
			return done, fmt.Errorf("after %d of %d bytes: %w", done, n, noEOF(err))
		}
	}
	return done, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func verifyReader(r io.Reader, want imgota.Digest) error {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	if got := imgota.Digest(h.Sum(nil)); got != want {
		return fmt.Errorf("SHA-256 %s, want %s", got, want)
	}
	return nil
}

func verifyFile(d Dir, name string, want imgota.Digest) error {
	f, err := d.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := verifyReader(f, want); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// VerifySlot checks that slot is complete and intact: its manifest, every
// file it lists, its cmdline.txt naming the slot's partition, and its root
// partition's bytes. It reads everything; inspect and tests use it.
func VerifySlot(d Dir, open OpenDevice, slot string) (*imgota.Manifest, error) {
	m, err := readSlotManifest(d, slot)
	if err != nil {
		return nil, fmt.Errorf("slot %s has no valid manifest: %w", slot, err)
	}
	for _, f := range m.Files {
		if err := verifyFile(d, path.Join(imgota.SlotDir(slot), f.Path), f.SHA256); err != nil {
			return m, fmt.Errorf("slot %s: %w", slot, err)
		}
	}
	cl, err := d.ReadFile(path.Join(imgota.SlotDir(slot), imgota.CmdlineFile))
	if err != nil {
		return m, fmt.Errorf("slot %s: %w", slot, err)
	}
	if got := cmdlineSlot(string(cl)); got != slot {
		return m, fmt.Errorf("slot %s: cmdline.txt boots root slot %q: %s", slot, got, bytes.TrimSpace(cl))
	}
	dev, err := open(slot)
	if err != nil {
		return m, err
	}
	defer dev.Close()
	if err := verifyReader(io.NewSectionReader(dev, 0, m.Root.Size), m.Root.SHA256); err != nil {
		return m, fmt.Errorf("root slot %s: %w", slot, err)
	}
	return m, nil
}

// RootChunks returns the running root's size (as its manifest says) and
// the hashes of its chunks, for a sender to make a root delta
// (image/ota.Writer.Delta). They are computed once per agent.
func (a *Agent) RootChunks() (int64, []imgota.Digest, error) {
	a.chunksMu.Lock()
	defer a.chunksMu.Unlock()
	if a.chunks != nil {
		return a.chunksSize, a.chunks, nil
	}
	m, err := readSlotManifest(a.Boot, a.Booted)
	if err != nil {
		return 0, nil, fmt.Errorf("the running slot %s has no manifest: %w", a.Booted, err)
	}
	dev, err := a.Root(a.Booted)
	if err != nil {
		return 0, nil, err
	}
	defer dev.Close()
	h, err := imgota.ChunkHashes(dev, m.Root.Size)
	if err != nil {
		return 0, nil, fmt.Errorf("hashing root slot %s: %w", a.Booted, err)
	}
	a.chunksSize, a.chunks = m.Root.Size, h
	return m.Root.Size, h, nil
}

// Have lists the hashes of the files the node can copy from its running
// slot or keep in the other one, so a sender can omit them.
func (a *Agent) Have() []imgota.Digest {
	seen := map[imgota.Digest]bool{}
	var out []imgota.Digest
	for _, s := range []string{a.Booted, imgota.Other(a.Booted)} {
		m, err := readSlotManifest(a.Boot, s)
		if err != nil {
			continue
		}
		for _, f := range m.Files {
			if !seen[f.SHA256] {
				seen[f.SHA256] = true
				out = append(out, f.SHA256)
			}
		}
	}
	return out
}

// cmdlineSlot returns the slot whose partition the last root= word of a
// kernel command line names ("" for none).
func cmdlineSlot(cmdline string) string {
	slot := ""
	for _, w := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(w, "root=PARTUUID="); ok {
			switch {
			case strings.HasSuffix(v, "-02"):
				slot = "a"
			case strings.HasSuffix(v, "-03"):
				slot = "b"
			default:
				slot = ""
			}
		}
	}
	return slot
}
