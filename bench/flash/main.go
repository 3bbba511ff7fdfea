// Command flash measures piimage flash against dd: it builds the web
// image (piimage build --role web), writes it to a loop device over a
// temporary file with our writer (write, then write plus verification; once
// with BLKZEROOUT as the loop device offers, once writing every zero as on a
// card reader that offloads nothing) and with dd bs=4M conv=fsync, all in
// one run and including the final sync, and prints MB/s of the image size.
// It never fails the build (make bench). Run it from the source tree, as
// root: go run ./bench/flash
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/piimage/piimage/cmd/piimage/cli"
	"github.com/piimage/piimage/image/flash"
)

func main() {
	rounds := flag.Int("rounds", 2, "runs of each writer (the best is reported)")
	img := flag.String("image", "", "image to write (default: build the web image)")
	flag.Parse()
	if err := run(*rounds, *img); err != nil {
		fmt.Fprintln(os.Stderr, "bench/flash:", err)
	}
}

func run(rounds int, img string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root for a loop device")
	}
	dir, err := os.MkdirTemp("", "piimage-bench-flash-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	if img == "" {
		var out bytes.Buffer
		start := time.Now()
		if err := cli.Run(ctx, []string{"build", "--role", "web", "--out-dir", dir}, &out, &out); err != nil {
			return fmt.Errorf("building the web image: %v\n%s", err, out.String())
		}
		fmt.Printf("built the web image in %s\n", time.Since(start).Round(time.Second))
		matches, _ := filepath.Glob(filepath.Join(dir, "*.img"))
		if len(matches) != 1 {
			return fmt.Errorf("build left %d images in %s", len(matches), dir)
		}
		img = matches[0]
	}
	st, err := os.Stat(img)
	if err != nil {
		return err
	}
	size := st.Size()
	// Warm the page cache with the image, so every writer reads it alike.
	if _, err := os.ReadFile(img); err != nil {
		return err
	}
	dev, detach, err := loop(filepath.Join(dir, "card.img"), size+64<<20)
	if err != nil {
		return err
	}
	defer detach()

	type result struct {
		name string
		best time.Duration
		note string
	}
	var results []result
	measure := func(name string, f func() (string, error)) error {
		r := result{name: name}
		for range rounds {
			start := time.Now()
			note, err := f()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if d := time.Since(start); r.best == 0 || d < r.best {
				r.best, r.note = d, note
			}
		}
		results = append(results, r)
		return nil
	}
	ours := func(verify, writeZeros bool) func() (string, error) {
		return func() (string, error) {
			res, err := flashOnce(ctx, img, dev, verify, writeZeros)
			if err != nil {
				return "", err
			}
			if !verify {
				return fmt.Sprintf("%d MiB put on the card", res.Bytes>>20), nil
			}
			return fmt.Sprintf("%d MiB put on the card: %d MiB written, %d MiB zeroed, %d MiB free blocks skipped", res.Bytes>>20, res.Written>>20, res.Zeroed>>20, res.Skipped>>20), nil
		}
	}
	for _, m := range []struct {
		name string
		f    func() (string, error)
	}{
		{"dd bs=4M conv=fsync", func() (string, error) {
			out, err := exec.Command("dd", "if="+img, "of="+dev, "bs=4M", "conv=fsync", "status=none").CombinedOutput()
			if err != nil {
				return "", fmt.Errorf("%v: %s", err, out)
			}
			return "every byte written", nil
		}},
		{"piimage write (BLKZEROOUT)", ours(false, false)},
		{"piimage write+verify (BLKZEROOUT)", ours(true, false)},
		{"piimage write (zeros written)", ours(false, true)},
		{"piimage write+verify (zeros written)", ours(true, true)},
	} {
		if err := measure(m.name, m.f); err != nil {
			return err
		}
	}
	fmt.Printf("\nimage %s, %d MiB, to a loop device over a file on this machine's disk; best of %d; MB/s of the image size\n",
		filepath.Base(img), size>>20, rounds)
	fmt.Println("caveat: other jobs share the 2 cores and the disk; a loop device is not an SD card (a card writes 10-90 MB/s)")
	var dd time.Duration
	for _, r := range results {
		if dd == 0 {
			dd = r.best
		}
		fmt.Printf("  %-38s %8s  %7.1f MB/s  %5.2fx dd   %s\n", r.name, r.best.Round(time.Millisecond),
			float64(size)/r.best.Seconds()/1e6, dd.Seconds()/r.best.Seconds(), r.note)
	}
	return nil
}

// flashOnce writes img to dev with our writer; without verify it stops
// after the write and sync (the verification is cancelled right away).
func flashOnce(ctx context.Context, img, dev string, verify, writeZeros bool) (*flash.Result, error) {
	im, err := flash.OpenImage(img)
	if err != nil {
		return nil, err
	}
	defer im.Close()
	var sys flash.System
	d, err := sys.Lookup(dev)
	if err != nil {
		return nil, err
	}
	if err := flash.Check(d, flash.Policy{ImageSize: im.Size()}); err != nil {
		return nil, err
	}
	t, err := sys.OpenDevice(d)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	o := flash.Options{WriteZeros: writeZeros}
	var card int64
	o.Progress = func(p flash.Progress) {
		card = p.Total
		if p.Phase == flash.PhaseVerify && !verify {
			cancel()
		}
	}
	res, err := flash.Write(ctx, im, t, o)
	if verify {
		return res, err
	}
	// Without verify, the write and its sync are done when verification
	// begins, which this run cancels.
	var ie *flash.InterruptedError
	if errors.As(err, &ie) && ie.Phase == flash.PhaseVerify {
		return &flash.Result{Bytes: card}, nil
	}
	if err == nil {
		err = errors.New("verification was not cancelled")
	}
	return nil, err
}

var loopRE = regexp.MustCompile(`^/dev/loop[0-9]+$`)

// loop creates a zero file of size bytes, attaches a loop device and
// checks that the device losetup printed is backed by that file.
func loop(file string, size int64) (string, func(), error) {
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		return "", nil, err
	}
	if err := os.Truncate(file, size); err != nil {
		return "", nil, err
	}
	out, err := exec.Command("losetup", "-f", "--show", file).Output()
	if err != nil {
		return "", nil, fmt.Errorf("losetup: %w", err)
	}
	dev := strings.TrimSpace(string(out))
	if !loopRE.MatchString(dev) {
		return "", nil, fmt.Errorf("losetup printed %q", dev)
	}
	detach := func() { exec.Command("losetup", "-d", dev).Run() }
	back, err := exec.Command("losetup", "--list", "--noheadings", "--output", "BACK-FILE", dev).Output()
	if err != nil || strings.TrimSpace(string(back)) != file {
		detach()
		return "", nil, fmt.Errorf("%s is backed by %q, not %s", dev, back, file)
	}
	return dev, detach, nil
}
