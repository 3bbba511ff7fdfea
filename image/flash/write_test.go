package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// fakeClock advances one second per call, so rates are deterministic.
func fakeClock() func() time.Time {
	now := testTime
	return func() time.Time {
		now = now.Add(time.Second)
		return now
	}
}

// writeToFile writes im to a new file with Write and returns the file.
func writeToFile(t *testing.T, im *Image, o Options) (string, *Result, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "card.img")
	tgt, err := CreateFile(out, im.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	if o.Now == nil {
		o.Now = fakeClock()
	}
	res, err := Write(context.Background(), im, tgt, o)
	return out, res, err
}

// TestWriteFile copies an image to a file and checks it is the image,
// byte for byte, and what Result counts.
func TestWriteFile(t *testing.T) {
	for _, chunk := range []int64{0, 64 << 10, 3 << 20} {
		im, path := openTestImage(t, true)
		var phases []string
		var last Progress
		out, res, err := writeToFile(t, im, Options{ChunkSize: chunk, Progress: func(p Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
			if p.Done > p.Total || (p.Phase == last.Phase && p.Done <= last.Done) {
				t.Errorf("progress went from %+v to %+v", last, p)
			}
			last = p
		}})
		if err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		want, _ := os.ReadFile(path)
		got, _ := os.ReadFile(out)
		if !bytes.Equal(want, got) {
			t.Fatalf("chunk %d: the copy differs from the image", chunk)
		}
		if strings.Join(phases, ",") != "write,verify" || last.Done != last.Total {
			t.Errorf("phases %q, last %+v", phases, last)
		}
		if res.Bytes+res.Skipped != im.Size() || res.Written+res.Zeroed != res.Bytes {
			t.Errorf("result does not add up: %+v", res)
		}
		if res.Skipped < 20*mib {
			t.Errorf("only %d bytes of the 32 MiB data partition skipped as free", res.Skipped)
		}
		if res.Zeroed == 0 || res.Written > 8*mib {
			t.Errorf("a fresh file should take only the non-zero data: %+v", res)
		}
	}
}

// TestOverlayReplacement flashes an image with a new node.yaml to a file:
// the FAT copy is the new one for fsck.fat and mtype, and every byte outside
// the FAT tables, the root directory and the overlay's clusters is the
// image's.
func TestOverlayReplacement(t *testing.T) {
	im, path := openTestImage(t, true)
	newOverlay := []byte(strings.ReplaceAll(testOverlay, "web01", "web02"))
	for i := range 100 {
		newOverlay = fmt.Appendf(newOverlay, "# a longer file, line %d\n", i)
	}
	if err := im.ReplaceBootFile("node.yaml", newOverlay); err != nil {
		t.Fatal(err)
	}
	if got, err := im.BootFile("node.yaml"); err != nil || !bytes.Equal(got, newOverlay) {
		t.Fatalf("BootFile after replace: %q, %v", got, err)
	}
	out, _, err := writeToFile(t, im, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := checkFAT(t, out); got != string(newOverlay) {
		t.Errorf("mtype node.yaml:\n%s\nwant:\n%s", got, newOverlay)
	}
	if got := checkData(t, out); got != testOverlay {
		t.Errorf("last good copy changed: %q", got)
	}
	want, _ := os.ReadFile(path)
	got, _ := os.ReadFile(out)
	checkOnlyOverlayChanged(t, want, got, []byte(testOverlay), newOverlay)
	for _, c := range im.Changed() {
		if c.End() > 68*mib {
			t.Errorf("changed page %+v outside the boot partition", c)
		}
	}
}

// flipReader flips one byte of what it reads at off.
type flipReader struct {
	r   io.ReaderAt
	off int64
}

func (f flipReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.r.ReadAt(p, off)
	if f.off >= off && f.off < off+int64(n) {
		p[f.off-off] ^= 0x40
	}
	return n, err
}

// TestVerifyCatchesCorruption injects a flipped byte into the read-back
// and expects a *VerifyError at exactly that byte, and no success.
func TestVerifyCatchesCorruption(t *testing.T) {
	im, path := openTestImage(t, false)
	want, _ := os.ReadFile(path)
	for _, off := range []int64{0, 510, 4*mib + 3, 70*mib + 7} {
		_, res, err := writeToFile(t, im, Options{ReadBack: func(r io.ReaderAt) io.ReaderAt {
			return flipReader{r, off}
		}})
		var ve *VerifyError
		if !errors.As(err, &ve) || res != nil {
			t.Fatalf("flip at %d: result %v, error %v; want a VerifyError", off, res, err)
		}
		if ve.Offset != off || ve.Want != want[off] || ve.Got != want[off]^0x40 {
			t.Errorf("flip at %d: %+v", off, ve)
		}
		if !strings.Contains(err.Error(), "does not hold the image") {
			t.Errorf("message %q", err)
		}
	}
}

// TestInterrupted cancels the write half-way: a clear error, no result,
// and a card without a partition table.
func TestInterrupted(t *testing.T) {
	for _, phase := range []string{PhaseWrite, PhaseVerify} {
		t.Run(phase, func(t *testing.T) {
			im, _ := openTestImage(t, false)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := filepath.Join(t.TempDir(), "card.img")
			tgt, err := CreateFile(out, im.Size())
			if err != nil {
				t.Fatal(err)
			}
			defer tgt.Close()
			res, err := Write(ctx, im, tgt, Options{ChunkSize: 1 << 20, Progress: func(p Progress) {
				if p.Phase == phase && p.Done > p.Total/2 {
					cancel()
				}
			}})
			var ie *InterruptedError
			if !errors.As(err, &ie) || res != nil || !errors.Is(err, context.Canceled) {
				t.Fatalf("result %v, error %v; want an InterruptedError", res, err)
			}
			if ie.Phase != phase || ie.Done >= ie.Total {
				t.Errorf("%+v", ie)
			}
			if phase == PhaseWrite {
				b := make([]byte, 512)
				f, _ := os.Open(out)
				defer f.Close()
				f.ReadAt(b, 0)
				if !bytes.Equal(b, make([]byte, 512)) {
					t.Error("an interrupted card has a partition table")
				}
			}
			if !strings.Contains(err.Error(), "flash it again") {
				t.Errorf("message %q", err)
			}
		})
	}
}

// TestReplaceData rebuilds the data partition of an image whose data
// holds only the overlay, at the same size and grown, and refuses one
// with a web root.
func TestReplaceData(t *testing.T) {
	newOverlay := strings.ReplaceAll(testOverlay, "web01", "lb2")
	tree := fstest.MapFS{
		".":                      {Mode: fs.ModeDir | 0o755},
		"piimage":                {Mode: fs.ModeDir | 0o700},
		"piimage/last-good.yaml": {Data: []byte(newOverlay), Mode: 0o600},
	}
	for _, end := range []int64{0, 200 * mib, 203*mib + 12345} {
		im, _ := openTestImage(t, false)
		if err := im.ReplaceData(end, tree); err != nil {
			t.Fatalf("end %d: %v", end, err)
		}
		wantSize := testLayout.Size()
		if end != 0 {
			wantSize = 200 * mib
		}
		if im.Size() != wantSize {
			t.Errorf("end %d: image size %d, want %d", end, im.Size(), wantSize)
		}
		out, res, err := writeToFile(t, im, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := checkData(t, out); got != newOverlay {
			t.Errorf("last good copy %q", got)
		}
		checkFAT(t, out)
		sf := run(t, "sfdisk", "--dump", out)
		if !strings.Contains(sf, "size=") || !strings.Contains(sf, "label-id: 0x1234abcd") {
			t.Errorf("sfdisk:\n%s", sf)
		}
		if res.Skipped < (wantSize-84*mib)/2 {
			t.Errorf("free data blocks not skipped: %+v", res)
		}
	}
	web, _ := openTestImage(t, true)
	var dn *DataNotEmptyError
	if err := web.ReplaceData(0, tree); !errors.As(err, &dn) || dn.UsedInodes != MinimalDataInodes+2 {
		t.Errorf("web image: %v", err)
	}
	if err := web.ReplaceData(50*mib, tree); err == nil {
		t.Error("shrinking accepted")
	}
}

// TestExtents checks that only the data partition's free blocks are left
// out, and that a broken ext4 makes the image count whole.
func TestExtents(t *testing.T) {
	im, _ := openTestImage(t, true)
	ext := im.Extents()
	if ext[0].Offset != 0 || ext[0].Size < 84*mib {
		t.Fatalf("first extent %+v does not cover the MBR, FAT and slots", ext[0])
	}
	var sum int64
	for i, e := range ext {
		sum += e.Size
		if i > 0 && e.Offset <= ext[i-1].End() {
			t.Errorf("extents %+v and %+v overlap or touch", ext[i-1], e)
		}
	}
	if sum >= im.Size() || sum < 84*mib {
		t.Errorf("extents cover %d of %d bytes", sum, im.Size())
	}
	// Break the ext4 magic: the whole image counts.
	if _, err := im.WriteAt([]byte{0, 0}, 84*mib+1024+0x38); err != nil {
		t.Fatal(err)
	}
	if ext := im.Extents(); len(ext) != 1 || ext[0].Size != im.Size() {
		t.Errorf("broken ext4: extents %+v", ext)
	}
}

// TestImageReadWrite checks the change layer against a plain buffer.
func TestImageReadWrite(t *testing.T) {
	base := random("base", 40_000)
	ref := bytes.Clone(base)
	im := NewImage(bytes.NewReader(base), int64(len(base)))
	writes := []struct {
		off int64
		n   int
	}{{0, 1}, {4095, 2}, {5000, 9000}, {39_999, 1}, {12_288, 4096}}
	for i, w := range writes {
		p := random(string(rune('a'+i)), w.n)
		if _, err := im.WriteAt(p, w.off); err != nil {
			t.Fatal(err)
		}
		copy(ref[w.off:], p)
	}
	for _, r := range []struct {
		off int64
		n   int
	}{{0, 40_000}, {1, 4096}, {4090, 20}, {39_990, 10}, {8000, 10_000}} {
		got := make([]byte, r.n)
		if _, err := im.ReadAt(got, r.off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, ref[r.off:r.off+int64(r.n)]) {
			t.Errorf("read %d at %d differs", r.n, r.off)
		}
	}
	if n, err := im.ReadAt(make([]byte, 10), 39_995); n != 5 || err != io.EOF {
		t.Errorf("read past the end: %d, %v", n, err)
	}
	if _, err := im.WriteAt([]byte{1}, 40_000); err == nil {
		t.Error("write past the end accepted")
	}
	if !bytes.Equal(base, random("base", 40_000)) {
		t.Error("the base was modified")
	}
	if len(base) != 40_000 {
		t.Fatal()
	}
}

// TestCreateFileRefusesExisting checks --to-file never overwrites.
func TestCreateFileRefusesExisting(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	os.WriteFile(p, []byte("keep"), 0o644)
	if _, err := CreateFile(p, 10); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("CreateFile over a file: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "keep" {
		t.Error("existing file changed")
	}
}
