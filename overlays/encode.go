package overlays

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Marshal writes n as overlay YAML that Parse reads back to the same Node.
// Fields at their zero value are left out.
func Marshal(n *Node) ([]byte, error) {
	y, err := n.MarshalYAML()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(y); err != nil {
		return nil, fmt.Errorf("encoding overlay of %s: %w", n.Hostname, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding overlay of %s: %w", n.Hostname, err)
	}
	return buf.Bytes(), nil
}

// MarshalYAML makes yaml.Marshal write a Node as Marshal does. (yaml.v3's
// own encoder would drop set netip.Addr fields tagged omitempty.)
func (n Node) MarshalYAML() (any, error) {
	y := encodeValue(reflect.ValueOf(n))
	if y == nil {
		y = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	return y, nil
}

// UnmarshalYAML makes yaml.Unmarshal decode a Node as Parse does: strictly,
// then validated. Problems carry lines but no file name.
func (n *Node) UnmarshalYAML(value *yaml.Node) error {
	p := newProblems("")
	p.lines[""] = value.Line
	var out Node
	(&decoder{p: p}).decode(value, reflect.ValueOf(&out).Elem(), "")
	out.validate(p)
	if err := p.err(); err != nil {
		return err
	}
	*n = out
	return nil
}

var textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()

// encodeValue turns v into a YAML node, or nil when v is a zero value that
// is left out.
func encodeValue(v reflect.Value) *yaml.Node {
	if v.IsZero() {
		return nil
	}
	t := v.Type()
	if t.Implements(textMarshalerType) {
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(b)}
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		y := encodeValue(v.Elem())
		if y == nil {
			// A present zero value: an empty section ("web: {}") or a
			// pointer to false or 0.
			y = zeroNode(v.Elem())
		}
		return y
	case reflect.Struct:
		y := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		fi := structFields(t)
		for _, name := range fi.names {
			if e := encodeValue(v.Field(fi.index[name])); e != nil {
				y.Content = append(y.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, e)
			}
		}
		if len(y.Content) == 0 {
			return nil
		}
		return y
	case reflect.Slice:
		y := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i := range v.Len() {
			e := encodeValue(v.Index(i))
			if e == nil {
				e = zeroNode(v.Index(i))
			}
			y.Content = append(y.Content, e)
		}
		if len(y.Content) == 0 {
			y.Style = yaml.FlowStyle
		}
		return y
	case reflect.Map:
		y := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		for _, k := range keys {
			e := encodeValue(v.MapIndex(reflect.ValueOf(k).Convert(t.Key())))
			if e == nil {
				e = zeroNode(v.MapIndex(reflect.ValueOf(k).Convert(t.Key())))
			}
			y.Content = append(y.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, e)
		}
		return y
	case reflect.String:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.String()}
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(v.Uint(), 10)}
	case reflect.Float32, reflect.Float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(v.Float(), 'g', -1, 64)}
	}
	return nil
}

// zeroNode writes a zero value that must be present (a list or map element,
// or what a non-nil pointer points to), which encodeValue leaves out.
func zeroNode(v reflect.Value) *yaml.Node {
	if v.Type().Implements(textMarshalerType) {
		// netip.Addr, netip.Prefix, Duration: their zero text ("", "0s").
		if b, err := v.Interface().(encoding.TextMarshaler).MarshalText(); err == nil {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(b)}
		}
	}
	switch v.Kind() {
	case reflect.Struct, reflect.Map:
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
	case reflect.Slice:
		return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	case reflect.String:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: "0"}
	case reflect.Float32, reflect.Float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: "0"}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
}
