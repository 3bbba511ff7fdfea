package mirror

import (
	"sort"
	"time"
)

// change is one path the watcher saw change. Writing is true when the
// change was a write to a file still open for writing (IN_MODIFY with no
// IN_CLOSE_WRITE yet).
type change struct {
	path    string
	writing bool
}

// batcher decides when changed paths go out. Changes are sent once they
// settle for delay, at most maxDelay after the first one; files still
// being written are held back until closed, but at most holdOpen at a
// time, so a large upload goes out once, whole, instead of every
// maxDelay. It is a pure state machine: the caller passes the time.
type batcher struct {
	delay, maxDelay, holdOpen time.Duration

	dirty       map[string]bool
	open        map[string]time.Time // file → when it was first seen written
	first, last time.Time            // of the changes not sent yet
}

func newBatcher(delay, maxDelay, holdOpen time.Duration) *batcher {
	return &batcher{delay: delay, maxDelay: maxDelay, holdOpen: holdOpen, dirty: map[string]bool{}, open: map[string]time.Time{}}
}

// add records changes seen at now.
func (b *batcher) add(now time.Time, cs []change) {
	for _, c := range cs {
		b.dirty[c.path] = true
		if !c.writing {
			delete(b.open, c.path)
		} else if _, ok := b.open[c.path]; !ok {
			b.open[c.path] = now
		}
	}
	if len(cs) > 0 {
		if b.first.IsZero() {
			b.first = now
		}
		b.last = now
	}
}

// due returns the paths to send at now, sorted, and when to ask again
// (the zero Time when nothing waits).
func (b *batcher) due(now time.Time) (paths []string, next time.Time) {
	if len(b.dirty) == 0 {
		return nil, time.Time{}
	}
	var at time.Time // when the changes not held are due
	if !b.first.IsZero() {
		at = b.last.Add(b.delay)
		if cap := b.first.Add(b.maxDelay); cap.Before(at) {
			at = cap
		}
	}
	hold := b.holdUntil()
	if !at.IsZero() && now.Before(at) || at.IsZero() && now.Before(hold) {
		if at.IsZero() {
			return nil, hold
		}
		return nil, at
	}
	for p := range b.dirty {
		if since, ok := b.open[p]; ok {
			if now.Before(since.Add(b.holdOpen)) {
				continue
			}
			b.open[p] = now // still written: again in holdOpen at the latest
		}
		paths = append(paths, p)
		delete(b.dirty, p)
	}
	sort.Strings(paths)
	b.first, b.last = time.Time{}, time.Time{}
	if len(b.dirty) > 0 {
		next = b.holdUntil()
	}
	return paths, next
}

// holdUntil returns when the first file held back is due anyway; the zero
// Time when none is held.
func (b *batcher) holdUntil() time.Time {
	var t time.Time
	for p := range b.dirty {
		if since, ok := b.open[p]; ok {
			if u := since.Add(b.holdOpen); t.IsZero() || u.Before(t) {
				t = u
			}
		}
	}
	return t
}
