package supervise

import (
	"bytes"
	"sync"
)

// maxLine is the longest line kept; longer lines are split.
const maxLine = 4096

// Ring keeps the last lines written to it. It is an io.Writer that splits
// its input into lines; a partial last line waits for its newline. It is
// safe for concurrent use.
type Ring struct {
	mu      sync.Mutex
	lines   []string
	next    int  // index the next line goes to once the ring is full
	full    bool // whether lines has wrapped
	partial []byte
	onLine  func(string)
}

// NewRing returns a ring that keeps the last n lines (n < 1 means 1) and
// calls onLine, when not nil, for every complete line.
func NewRing(n int, onLine func(line string)) *Ring {
	if n < 1 {
		n = 1
	}
	return &Ring{lines: make([]string, 0, n), onLine: onLine}
}

// Write adds the complete lines in p to the ring. It never fails.
func (r *Ring) Write(p []byte) (int, error) {
	var done []string
	r.mu.Lock()
	data := p
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			r.partial = append(r.partial, data...)
			for len(r.partial) >= maxLine {
				done = append(done, r.add(r.partial[:maxLine]))
				r.partial = append(r.partial[:0], r.partial[maxLine:]...)
			}
			break
		}
		line := append(r.partial, data[:i]...)
		r.partial = r.partial[:0]
		for len(line) > maxLine {
			done = append(done, r.add(line[:maxLine]))
			line = line[maxLine:]
		}
		done = append(done, r.add(line))
		data = data[i+1:]
	}
	r.mu.Unlock()
	if r.onLine != nil {
		for _, l := range done {
			r.onLine(l)
		}
	}
	return len(p), nil
}

// Flush ends a partial last line as if its newline had arrived.
func (r *Ring) Flush() {
	r.mu.Lock()
	if len(r.partial) == 0 {
		r.mu.Unlock()
		return
	}
	l := r.add(r.partial)
	r.partial = r.partial[:0]
	r.mu.Unlock()
	if r.onLine != nil {
		r.onLine(l)
	}
}

// add stores one line; r.mu is held.
func (r *Ring) add(b []byte) string {
	l := string(bytes.TrimSuffix(b, []byte("\r")))
	if !r.full && len(r.lines) < cap(r.lines) {
		r.lines = append(r.lines, l)
		return l
	}
	r.full = true
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
	return l
}

// Lines returns the kept lines, oldest first.
func (r *Ring) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.lines))
	out = append(out, r.lines[r.next:]...)
	return append(out, r.lines[:r.next]...)
}
