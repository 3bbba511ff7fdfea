package overlays

import (
	"encoding"
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder fills Go values from a yaml.Node tree by reflection. Unlike
// yaml.v3's own decoder it reports every problem (not only the first), names
// each by field path and line, and refuses duplicate keys, aliases and
// unknown fields. It records the line of every field it meets so that
// Validate can point at them too.
type decoder struct {
	p *problems
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	addrType            = reflect.TypeFor[netip.Addr]()
	prefixType          = reflect.TypeFor[netip.Prefix]()
)

// fail records a decoding problem at node and marks path as bad, so that
// Validate does not complain again about the value left zero.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.p.list = append(d.p.list, Problem{File: d.p.file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)})
	d.p.bad[path] = true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if isNull(n) {
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

// decode stores n into v, which must be settable; path is v's field path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if _, ok := d.p.lines[path]; !ok {
		d.p.lines[path] = n.Line
	}
	if n.Kind == yaml.AliasNode {
		d.fail(n, path, "YAML aliases (*%s) are not supported in overlays; write the value out", n.Value)
		return
	}
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		if isNull(n) {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	if isNull(n) || (n.Kind == yaml.ScalarNode && n.Value == "" && (t == addrType || t == prefixType)) {
		// "key:" with no value (or an empty address) leaves the field at
		// its zero value.
		v.SetZero()
		return
	}
	switch {
	case t == addrType:
		d.decodeAddr(n, v, path)
		return
	case t == prefixType:
		d.decodePrefix(n, v, path)
		return
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a single value, got %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected text, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || !isWholeNumber(n) {
			d.fail(n, path, "expected a whole number, got %s", describe(n))
			return
		}
		if n.Decode(&i) != nil {
			d.fail(n, path, "%s is too large", n.Value)
			return
		}
		if v.OverflowInt(i) {
			d.fail(n, path, "%d is too large", i)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if n.Kind != yaml.ScalarNode || !isWholeNumber(n) || strings.HasPrefix(n.Value, "-") {
			d.fail(n, path, "expected a whole number not below 0, got %s", describe(n))
			return
		}
		if n.Decode(&u) != nil {
			d.fail(n, path, "%s is too large", n.Value)
			return
		}
		if v.OverflowUint(u) {
			d.fail(n, path, "%d is too large", u)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!float" && tag != "!!int") || n.Decode(&f) != nil {
			d.fail(n, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		// A programming error in this package's types, not in the file.
		d.fail(n, path, "internal error: cannot decode into a Go %s", t)
	}
}

// isWholeNumber reports whether n is a plain whole number, including one too
// large for yaml.v3, which calls those floats. A quoted "80" is text.
func isWholeNumber(n *yaml.Node) bool {
	switch n.ShortTag() {
	case "!!int":
		return true
	case "!!float":
		return allDigits(n.Value)
	}
	return false
}

// allDigits reports whether s is an optional sign and decimal digits.
func allDigits(s string) bool {
	s = strings.TrimLeft(s, "+-")
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (d *decoder) decodeAddr(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected an IPv4 address like 192.168.1.1, got %s", describe(n))
		return
	}
	a, err := netip.ParseAddr(n.Value)
	if err != nil {
		if _, perr := netip.ParsePrefix(n.Value); perr == nil {
			d.fail(n, path, "%q: write the address without a prefix length, like 192.168.1.1", n.Value)
			return
		}
		d.fail(n, path, "%q is not an IPv4 address like 192.168.1.1", n.Value)
		return
	}
	v.Set(reflect.ValueOf(a))
}

func (d *decoder) decodePrefix(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected an IPv4 address with prefix length like 192.168.1.14/24, got %s", describe(n))
		return
	}
	p, err := netip.ParsePrefix(n.Value)
	if err != nil {
		if _, aerr := netip.ParseAddr(n.Value); aerr == nil {
			d.fail(n, path, "%q needs a prefix length, like %s/24", n.Value, n.Value)
			return
		}
		addr, bits, ok := strings.Cut(n.Value, "/")
		if _, aerr := netip.ParseAddr(addr); ok && aerr == nil {
			d.fail(n, path, "%q: bad prefix length /%s (use 1 to 32 for IPv4, e.g. /24)", n.Value, bits)
			return
		}
		d.fail(n, path, "%q is not an IPv4 address with prefix length like 192.168.1.14/24", n.Value)
		return
	}
	v.Set(reflect.ValueOf(p))
}

// fieldInfo maps a struct's YAML keys to field indexes.
type fieldInfo struct {
	names []string       // in declaration order, for messages
	index map[string]int // key -> field index
}

func structFields(t reflect.Type) fieldInfo {
	fi := fieldInfo{index: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fi.names = append(fi.names, name)
		fi.index[name] = i
	}
	return fi
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys to values, got %s", describe(n))
		return
	}
	fi := structFields(v.Type())
	d.eachKey(n, path, "a field name", func(k, val *yaml.Node, fp string) {
		idx, ok := fi.index[k.Value]
		if !ok {
			d.fail(k, fp, "unknown field %s", suggest(k.Value, fi.names))
			return
		}
		d.p.lines[fp] = k.Line
		d.decode(val, v.Field(idx), fp)
	})
}

// eachKey calls fn for every key of the mapping n with its value and field
// path, after refusing keys that are not names and keys defined twice.
func (d *decoder) eachKey(n *yaml.Node, path, what string, fn func(k, val *yaml.Node, fp string)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(k, path, "expected %s, got %s", what, describe(k))
			continue
		}
		fp := join(path, k.Value)
		if prev, ok := seen[k.Value]; ok {
			d.fail(k, fp, "defined twice (first on line %d)", prev)
			continue
		}
		seen[k.Value] = k.Line
		fn(k, val, fp)
	}
}

// suggest quotes key and lists the valid names, nearest first.
func suggest(key string, names []string) string {
	if len(names) == 0 {
		return strconv.Quote(key)
	}
	sorted := append([]string(nil), names...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return editDistance(key, sorted[i]) < editDistance(key, sorted[j])
	})
	if editDistance(key, sorted[0]) <= 2 {
		return fmt.Sprintf("%q (did you mean %q?)", key, sorted[0])
	}
	return fmt.Sprintf("%q (known fields: %s)", key, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance of a and b, counted in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list like [a, b], got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, "internal error: map keys of type %s", t.Key())
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys to values, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	d.eachKey(n, path, "a name", func(k, val *yaml.Node, fp string) {
		d.p.lines[fp] = k.Line
		e := reflect.New(t.Elem()).Elem()
		d.decode(val, e, fp)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), e)
	})
	v.Set(m)
}
