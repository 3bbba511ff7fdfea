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

// problems collects Problems while validating.
type problems struct {
	file  string
	lines map[string]int // field path -> line, from the YAML tree
	list  []Problem
}

func (p *problems) addf(field, format string, args ...any) {
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
