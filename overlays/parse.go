package overlays

import (
	"bytes"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// Parse decodes and validates one overlay; filename is used in errors only.
func Parse(filename string, data []byte) (*Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var n Node
	if err := dec.Decode(&n); err != nil {
		return nil, &Error{Problems: []Problem{{File: filename, Msg: err.Error()}}}
	}
	n.File = filename
	if err := n.Validate(); err != nil {
		return nil, err
	}
	return &n, nil
}

// Load reads and parses the overlay at path.
func Load(path string) (*Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading overlay: %w", err)
	}
	return Parse(path, data)
}

// Validate checks every field of n and reports all bad ones in an *Error.
func (n *Node) Validate() error {
	p := &problems{file: n.File}
	return p.err()
}
