package overlays

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// MaxSize is the largest overlay file Parse accepts. A node's overlay is a
// few hundred bytes; the limit keeps a corrupt file from costing memory.
const MaxSize = 1 << 20

// Parse decodes one overlay strictly and validates it. filename is used in
// error messages and stored in Node.File. Unknown fields, values of the wrong
// type, duplicate keys, YAML aliases and more than one YAML document are
// errors. Every error is an *Error listing all problems found.
func Parse(filename string, data []byte) (*Node, error) {
	n, p := parse(filename, data)
	if err := p.err(); err != nil {
		return nil, err
	}
	return n, nil
}

// parse decodes and validates data, returning the node (nil if the YAML
// could not be read at all) and the problems with their line map.
func parse(filename string, data []byte) (*Node, *problems) {
	p := newProblems(filename)
	if len(data) > MaxSize {
		p.list = append(p.list, Problem{File: filename, Msg: fmt.Sprintf("file is %d bytes; an overlay may have at most %d", len(data), MaxSize)})
		return nil, p
	}
	root, err := parseYAML(data)
	if err != nil {
		p.list = append(p.list, yamlProblem(filename, err))
		return nil, p
	}
	if root == nil {
		p.list = append(p.list, Problem{File: filename, Line: 1, Msg: "file is empty; an overlay needs at least hostname, role and interfaces.eth0"})
		return nil, p
	}
	p.lines[""] = root.Line
	n := &Node{File: filename}
	d := &decoder{p: p}
	d.decode(root, reflect.ValueOf(n).Elem(), "")
	n.File = filename
	n.validate(p)
	sort.SliceStable(p.list, func(i, j int) bool { return p.list[i].Line < p.list[j].Line })
	return n, p
}

// parseYAML returns the content of data's only YAML document, or nil if data
// holds no document.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// The YAML library is outside code reading outside input; a bug in
		// it must not bring down PID 1.
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, &lineError{line: extra.Line, msg: "a second YAML document (after ---); an overlay file holds one node"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return e.msg }

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlProblem turns a YAML syntax error into a Problem with its line.
func yamlProblem(file string, err error) Problem {
	var le *lineError
	if errors.As(err, &le) {
		return Problem{File: file, Line: le.line, Msg: le.msg}
	}
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: line, Msg: "YAML syntax: " + m[2]}
	}
	return Problem{File: file, Msg: msg}
}

// Load reads and parses the overlay at path.
func Load(path string) (*Node, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading overlay: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading overlay: %w", err)
	}
	return data, nil
}

// LoadDir loads every *.yaml file directly in dir (not in subfolders), in
// name order, and checks them together with ValidateCluster. All problems of
// all files come back in one *Error; nodes is nil when there are any.
func LoadDir(dir string) ([]*Node, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("listing overlays in %s: %w", dir, err)
	}
	sort.Strings(paths)
	var (
		nodes []*Node
		lines = map[*Node]map[string]int{}
		all   []Problem
	)
	for _, path := range paths {
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			continue
		}
		data, err := readFile(path)
		if err != nil {
			return nil, err
		}
		n, p := parse(path, data)
		all = append(all, p.list...)
		if n != nil && len(p.list) == 0 {
			nodes = append(nodes, n)
			lines[n] = p.lines
		}
	}
	if len(paths) == 0 {
		all = append(all, Problem{File: dir, Msg: "no *.yaml overlay files"})
	}
	all = append(all, validateCluster(nodes, lines)...)
	if len(all) > 0 {
		return nil, &Error{Problems: all}
	}
	return nodes, nil
}
