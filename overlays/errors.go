package overlays

import (
	"fmt"
	"strings"
)

// Problem is one bad field of an overlay.
type Problem struct {
	File  string // path of the overlay file; "" for nodes built in Go
	Line  int    // 1-based line; 0 when unknown
	Field string // dotted field path, e.g. interfaces.eth0.gateway
	Msg   string
}

// String formats p as "file:line: field: msg", leaving out what is unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in one or more overlays.
type Error struct {
	Problems []Problem
}

// Error joins the problems, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems while decoding and validating one node.
type problems struct {
	file  string
	lines map[string]int  // field path -> line, from the YAML tree
	bad   map[string]bool // field paths that failed to decode
	list  []Problem
}

func newProblems(file string) *problems {
	return &problems{file: file, lines: map[string]int{}, bad: map[string]bool{}}
}

// addf records a problem with field, unless field, one of its parents or one
// of its children already failed to decode: then the value Validate sees is
// not what the file says, and the decoding problem has been reported.
func (p *problems) addf(field, format string, args ...any) {
	for b := range p.bad {
		if b == "" || b == field || strings.HasPrefix(field, b+".") || strings.HasPrefix(field, b+"[") ||
			strings.HasPrefix(b, field+".") || strings.HasPrefix(b, field+"[") {
			return
		}
	}
	p.list = append(p.list, Problem{File: p.file, Line: p.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// line returns the line of field, or of its nearest ancestor that has one.
func (p *problems) line(field string) int {
	for f := field; ; {
		if l, ok := p.lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			return p.lines[""]
		}
		f = f[:i]
	}
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &Error{Problems: p.list}
}
