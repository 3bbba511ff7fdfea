package supervise

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fakeClock is a Clock whose timers fire only in Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	when    time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return was
		}
	}
	return false
}

// Advance moves the clock by d, firing due timers in order, synchronously.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].when.Before(c.timers[j].when) })
		if len(c.timers) == 0 || c.timers[0].when.After(end) {
			c.now = end
			c.mu.Unlock()
			return
		}
		t := c.timers[0]
		c.timers = c.timers[1:]
		c.now = t.when
		t.stopped = true
		c.mu.Unlock()
		t.f()
	}
}

// fakeStarter records starts and signals as text and lets the test end
// processes.
type fakeStarter struct {
	mu      sync.Mutex
	clock   *fakeClock
	nextPID int
	fail    error
	exits   map[int]func(Exit)
	ops     []string
}

func newFakeStarter(c *fakeClock) *fakeStarter {
	return &fakeStarter{clock: c, nextPID: 100, exits: map[int]func(Exit){}}
}

func (f *fakeStarter) at() string {
	return fmt.Sprintf("t=%v", f.clock.Now().Sub(time.Unix(1_000_000, 0)))
}

func (f *fakeStarter) Start(cmd Command, exited func(Exit)) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		f.ops = append(f.ops, f.at()+" start "+cmd.Args[0]+" failed")
		return 0, f.fail
	}
	f.nextPID++
	f.exits[f.nextPID] = exited
	f.ops = append(f.ops, fmt.Sprintf("%s start %s pid %d", f.at(), cmd.Args[0], f.nextPID))
	return f.nextPID, nil
}

func (f *fakeStarter) Kill(pid int, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, fmt.Sprintf("%s kill -%d %d", f.at(), sig, pid))
	return nil
}

// end makes pid end with e.
func (f *fakeStarter) end(pid int, e Exit) {
	f.mu.Lock()
	cb := f.exits[pid]
	delete(f.exits, pid)
	f.mu.Unlock()
	if cb == nil {
		panic(fmt.Sprintf("pid %d is not running", pid))
	}
	cb(e)
}

func (f *fakeStarter) take() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := strings.Join(f.ops, "\n")
	f.ops = nil
	return s
}
