package mirror

import (
	"fmt"
	"path"
	"strings"
)

// excluder matches paths against exclude patterns written as rsync reads
// them: "*" and "?" and classes stay within an element, "**" matches any
// number of elements (zero included), a leading "/" anchors the pattern at
// the root, a trailing "/" matches folders only, and a pattern not
// anchored matches at any depth ("stats" is "**/stats"). A folder that
// matches excludes everything in it.
type excluder struct {
	pats []pattern
}

type pattern struct {
	elems   []string
	dirOnly bool
}

// newExcluder compiles patterns.
func newExcluder(patterns []string) (*excluder, error) {
	e := &excluder{}
	for _, s := range patterns {
		p := pattern{dirOnly: strings.HasSuffix(s, "/")}
		anchored := strings.HasPrefix(s, "/")
		s = strings.Trim(s, "/")
		if s == "" {
			return nil, fmt.Errorf("exclude pattern %q is empty", s)
		}
		if !anchored {
			p.elems = append(p.elems, "**")
		}
		for _, el := range strings.Split(s, "/") {
			if el != "**" {
				if _, err := path.Match(el, ""); err != nil {
					return nil, fmt.Errorf("exclude pattern %q: %w", s, err)
				}
			}
			p.elems = append(p.elems, el)
		}
		e.pats = append(e.pats, p)
	}
	return e, nil
}

// match reports whether the entry rel itself is excluded.
func (e *excluder) match(rel string, isDir bool) bool {
	if e == nil || len(e.pats) == 0 {
		return false
	}
	elems := strings.Split(rel, "/")
	for _, p := range e.pats {
		if p.dirOnly && !isDir {
			continue
		}
		if matchElems(p.elems, elems) {
			return true
		}
	}
	return false
}

// excluded reports whether rel or any folder above it is excluded.
func (e *excluder) excluded(rel string, isDir bool) bool {
	if e == nil || len(e.pats) == 0 {
		return false
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && e.match(rel[:i], true) {
			return true
		}
	}
	return e.match(rel, isDir)
}

func matchElems(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchElems(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
