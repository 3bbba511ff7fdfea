package ota

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
	"testing/fstest"
)

// errPowerCut is what every operation returns once the power is gone.
var errPowerCut = errors.New("power cut")

// power is a budget of write units shared by a card's partitions: each
// byte written costs one, each metadata operation (create, rename,
// remove, mkdir) and each sync one. When the budget runs out mid-write,
// the write stops there and everything after fails.
type power struct {
	left  int64 // -1: unlimited
	cut   bool
	spent int64
	// cuts collects interesting cut points: before each operation, in
	// the middle of a write and before its last byte.
	cuts []int64
}

func (p *power) spend(n int64) (int64, error) {
	if p.cut {
		return 0, errPowerCut
	}
	p.cuts = append(p.cuts, p.spent)
	if n > 1 {
		p.cuts = append(p.cuts, p.spent+n/2, p.spent+n-1)
	}
	if p.left < 0 || n <= p.left {
		if p.left >= 0 {
			p.left -= n
		}
		p.spent += n
		return n, nil
	}
	k := p.left
	p.spent += k
	p.left, p.cut = 0, true
	return k, errPowerCut
}

// snapshot is the contents of a fake FAT.
type snapshot struct {
	files map[string][]byte
	dirs  map[string]bool
}

func (s snapshot) clone() snapshot {
	c := snapshot{files: map[string][]byte{}, dirs: maps.Clone(s.dirs)}
	for k, v := range s.files {
		c.files[k] = bytes.Clone(v)
	}
	return c
}

// fsOp is one mutation of a fake FAT.
type fsOp struct {
	kind     string // create, write, rename, remove, mkdir
	name, to string
	off      int64
	data     []byte
}

func (s snapshot) apply(op fsOp) {
	switch op.kind {
	case "create":
		s.files[op.name] = []byte{}
	case "write":
		b, ok := s.files[op.name]
		if !ok {
			return
		}
		if end := op.off + int64(len(op.data)); end > int64(len(b)) {
			b = append(b, make([]byte, end-int64(len(b)))...)
		}
		copy(b[op.off:], op.data)
		s.files[op.name] = b
	case "rename":
		if b, ok := s.files[op.name]; ok {
			s.files[op.to] = b
			delete(s.files, op.name)
		}
	case "remove":
		delete(s.files, op.name)
		delete(s.dirs, op.name)
	case "mkdir":
		for d := op.name; d != "." && d != "/"; d = path.Dir(d) {
			s.dirs[d] = true
		}
	}
}

// fakeFS is a Dir whose writes become durable only at Sync: after a power
// cut, the card holds the last synced state plus any subset of the
// operations since (see afterCut).
type fakeFS struct {
	p       *power
	cur     snapshot
	synced  snapshot
	pending []fsOp
	// guard, when set, sees every mutation before it happens.
	guard func(op fsOp)
}

func newFakeFS(p *power, s snapshot) *fakeFS {
	return &fakeFS{p: p, cur: s.clone(), synced: s.clone()}
}

func (f *fakeFS) do(op fsOp) error {
	if f.guard != nil {
		f.guard(op)
	}
	if _, err := f.p.spend(1); err != nil {
		return err
	}
	f.cur.apply(op)
	f.pending = append(f.pending, op)
	return nil
}

func (f *fakeFS) ReadFile(name string) ([]byte, error) {
	if f.p.cut {
		return nil, errPowerCut
	}
	b, ok := f.cur.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return bytes.Clone(b), nil
}

func (f *fakeFS) Open(name string) (io.ReadCloser, error) {
	b, err := f.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (f *fakeFS) Create(name string) (io.WriteCloser, error) {
	if !f.cur.dirs[path.Dir(name)] && path.Dir(name) != "." {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrNotExist}
	}
	if err := f.do(fsOp{kind: "create", name: name}); err != nil {
		return nil, err
	}
	return &fakeFile{fs: f, name: name}, nil
}

func (f *fakeFS) Rename(from, to string) error {
	if _, ok := f.cur.files[from]; !ok && !f.p.cut {
		return &fs.PathError{Op: "rename", Path: from, Err: fs.ErrNotExist}
	}
	return f.do(fsOp{kind: "rename", name: from, to: to})
}

func (f *fakeFS) Remove(name string) error {
	_, file := f.cur.files[name]
	if !file && !f.cur.dirs[name] && !f.p.cut {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	return f.do(fsOp{kind: "remove", name: name})
}

func (f *fakeFS) MkdirAll(name string) error {
	if f.cur.dirs[name] {
		return nil
	}
	return f.do(fsOp{kind: "mkdir", name: name})
}

func (f *fakeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if f.p.cut {
		return nil, errPowerCut
	}
	m := fstest.MapFS{}
	for k, v := range f.cur.files {
		m[k] = &fstest.MapFile{Data: v}
	}
	for k := range f.cur.dirs {
		m[k] = &fstest.MapFile{Mode: fs.ModeDir}
	}
	return fs.ReadDir(m, name)
}

func (f *fakeFS) Sync() error {
	if _, err := f.p.spend(1); err != nil {
		return err
	}
	f.synced = f.cur.clone()
	f.pending = nil
	return nil
}

// afterCut returns what the card holds after the power cut: the synced
// state plus the pending operations that keep(i) selects, in order.
func (f *fakeFS) afterCut(keep func(i int) bool) snapshot {
	s := f.synced.clone()
	for i, op := range f.pending {
		if keep(i) {
			s.apply(op)
		}
	}
	return s
}

type fakeFile struct {
	fs   *fakeFS
	name string
	off  int64
}

func (w *fakeFile) Write(p []byte) (int, error) {
	if w.fs.guard != nil {
		w.fs.guard(fsOp{kind: "write", name: w.name})
	}
	k, err := w.fs.p.spend(int64(len(p)))
	if k > 0 {
		op := fsOp{kind: "write", name: w.name, off: w.off, data: bytes.Clone(p[:k])}
		w.fs.cur.apply(op)
		w.fs.pending = append(w.fs.pending, op)
		w.off += k
	}
	return int(k), err
}

func (w *fakeFile) Close() error { return nil }

// fakeDev is a root partition with the same power model.
type fakeDev struct {
	p       *power
	slot    string
	cur     []byte
	synced  []byte
	pending []fsOp
	guard   func(slot string)
}

func newFakeDev(p *power, slot string, data []byte) *fakeDev {
	return &fakeDev{p: p, slot: slot, cur: bytes.Clone(data), synced: bytes.Clone(data)}
}

func (d *fakeDev) ReadAt(b []byte, off int64) (int, error) {
	if d.p.cut {
		return 0, errPowerCut
	}
	if off >= int64(len(d.cur)) {
		return 0, io.EOF
	}
	n := copy(b, d.cur[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (d *fakeDev) WriteAt(b []byte, off int64) (int, error) {
	if d.guard != nil {
		d.guard(d.slot)
	}
	if off+int64(len(b)) > int64(len(d.cur)) {
		return 0, errors.New("write past the end of the partition")
	}
	k, err := d.p.spend(int64(len(b)))
	if k > 0 {
		copy(d.cur[off:], b[:k])
		d.pending = append(d.pending, fsOp{kind: "write", off: off, data: bytes.Clone(b[:k])})
	}
	return int(k), err
}

func (d *fakeDev) Size() int64 { return int64(len(d.cur)) }

func (d *fakeDev) Sync() error {
	if _, err := d.p.spend(1); err != nil {
		return err
	}
	d.synced = bytes.Clone(d.cur)
	d.pending = nil
	return nil
}

func (d *fakeDev) Close() error { return nil }

func (d *fakeDev) afterCut(keep func(i int) bool) []byte {
	b := bytes.Clone(d.synced)
	for i, op := range d.pending {
		if keep(i) {
			copy(b[op.off:], op.data)
		}
	}
	return b
}

// card is a fake SD card: the boot FAT and the two root partitions.
type card struct {
	p    *power
	boot *fakeFS
	devs map[string]*fakeDev
}

// cardState is a card's durable contents.
type cardState struct {
	boot snapshot
	devs map[string][]byte
}

func (c cardState) clone() cardState {
	d := map[string][]byte{}
	for k, v := range c.devs {
		d[k] = bytes.Clone(v)
	}
	return cardState{boot: c.boot.clone(), devs: d}
}

// mount returns a card with state s and a power budget (-1: unlimited).
func (s cardState) mount(budget int64) *card {
	p := &power{left: budget}
	c := &card{p: p, boot: newFakeFS(p, s.boot), devs: map[string]*fakeDev{}}
	for slot, data := range s.devs {
		c.devs[slot] = newFakeDev(p, slot, data)
	}
	return c
}

func (c *card) open(slot string) (Device, error) {
	d, ok := c.devs[slot]
	if !ok {
		return nil, errors.New("no such slot")
	}
	return d, nil
}

// state returns the card's contents now (everything written counts).
func (c *card) state() cardState {
	s := cardState{boot: c.boot.cur.clone(), devs: map[string][]byte{}}
	for k, d := range c.devs {
		s.devs[k] = bytes.Clone(d.cur)
	}
	return s
}

// pending counts the card's writes since the last syncs.
func (c *card) pending() int {
	n := len(c.boot.pending)
	for _, d := range c.devs {
		n += len(d.pending)
	}
	return n
}

// afterCut returns the card's contents after the power cut: the synced
// state plus the pending writes that keep selects, numbered across the
// FAT, then the partitions in slot order.
func (c *card) afterCut(keep func(i int) bool) cardState {
	s := cardState{boot: c.boot.afterCut(keep), devs: map[string][]byte{}}
	off := len(c.boot.pending)
	for _, k := range slices.Sorted(maps.Keys(c.devs)) {
		d := c.devs[k]
		base := off
		s.devs[k] = d.afterCut(func(i int) bool { return keep(base + i) })
		off += len(d.pending)
	}
	return s
}

// survivors lists which of n pending writes survive a cut, for the tests
// to try each: none, all, every prefix (writes land in order), all but
// one, only one, and a few random subsets.
func survivors(n int) []func(int) bool {
	out := []func(int) bool{
		func(int) bool { return false },
		func(int) bool { return true },
	}
	for j := 1; j < n; j++ {
		out = append(out,
			func(i int) bool { return i < j },
			func(i int) bool { return i != j },
			func(i int) bool { return i == j })
	}
	if n > 0 {
		out = append(out, func(i int) bool { return i != 0 }, func(i int) bool { return i == 0 })
	}
	for seed := uint64(0); seed < 3 && n > 1; seed++ {
		rng := rand.New(rand.NewPCG(seed, uint64(n)))
		pick := make([]bool, n)
		for i := range pick {
			pick[i] = rng.IntN(2) == 0
		}
		out = append(out, func(i int) bool { return pick[i] })
	}
	return out
}

// listing describes a FAT snapshot for failure messages.
func (s snapshot) listing() string {
	var lines []string
	for k, v := range s.files {
		if strings.HasSuffix(k, ".txt") || strings.HasSuffix(k, ".json") {
			lines = append(lines, k+": "+strings.ReplaceAll(strings.TrimSpace(string(v)), "\n", " | "))
		} else {
			lines = append(lines, k)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
