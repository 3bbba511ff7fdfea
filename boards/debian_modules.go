package boards

import (
	"bytes"
	"debug/elf"
	"fmt"
	"path"
	"sort"
	"strings"
)

// ModInfo is what a kernel module says about itself in its .modinfo ELF
// section, the data modinfo(8) prints and depmod(8) builds modules.dep
// from. Debian's linux-image packages ship no modules.dep (depmod runs when
// the package is installed), so the builder reads this instead.
type ModInfo struct {
	// Name is the module's name, with "-" spelled "_" as the kernel does.
	Name string `json:"name"`
	// Path is the module file's path under lib/modules/RELEASE/.
	Path string `json:"path"`
	// Depends are the modules whose symbols it uses: they load first.
	Depends []string `json:"depends,omitempty"`
	// SoftPre and SoftPost are its softdep "pre:" and "post:" names
	// (modules or aliases), e.g. ext4's "pre: crc32c".
	SoftPre  []string `json:"softpre,omitempty"`
	SoftPost []string `json:"softpost,omitempty"`
	// Aliases are its alias= values (device patterns and names such as
	// "crypto-crc32c").
	Aliases []string `json:"aliases,omitempty"`
}

// modName turns a module file name or name into the kernel's spelling:
// "sdhci-iproc.ko" -> "sdhci_iproc".
func modName(s string) string {
	s = path.Base(s)
	s = strings.TrimSuffix(s, ".xz")
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// ParseModInfo reads the .modinfo section of the kernel module ko (an ELF
// relocatable file) found at path p. Keys other than name, depends,
// softdep and alias are ignored.
func ParseModInfo(p string, ko []byte) (ModInfo, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return ModInfo{}, fmt.Errorf("reading module %s: %w", p, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return ModInfo{}, fmt.Errorf("reading module %s: no .modinfo section", p)
	}
	if sec.Type == elf.SHT_NOBITS || sec.Size > 1<<20 {
		return ModInfo{}, fmt.Errorf("reading module %s: bad .modinfo section", p)
	}
	data, err := sec.Data()
	if err != nil {
		return ModInfo{}, fmt.Errorf("reading module %s: .modinfo: %w", p, err)
	}
	mi := ModInfo{Name: modName(p), Path: p}
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			if n := modName(v); n != "" {
				mi.Name = n
			}
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					mi.Depends = append(mi.Depends, modName(d))
				}
			}
		case "softdep":
			pre, post := parseSoftdep(v)
			mi.SoftPre = append(mi.SoftPre, pre...)
			mi.SoftPost = append(mi.SoftPost, post...)
		case "alias":
			mi.Aliases = append(mi.Aliases, v)
		}
	}
	return mi, nil
}

// parseSoftdep splits a softdep value, "pre: a b post: c", into its pre
// and post names.
func parseSoftdep(v string) (pre, post []string) {
	var cur *[]string
	for _, w := range strings.Fields(v) {
		switch w {
		case "pre:":
			cur = &pre
		case "post:":
			cur = &post
		default:
			if cur != nil {
				*cur = append(*cur, w)
			}
		}
	}
	return pre, post
}

// ModuleIndex finds modules by name or by exact alias.
type ModuleIndex struct {
	byName  map[string]ModInfo
	byAlias map[string][]string
	builtin map[string]bool
}

// NewModuleIndex indexes mods; builtin names the modules built into the
// kernel (modules.builtin), which need no loading.
func NewModuleIndex(mods []ModInfo, builtin []string) *ModuleIndex {
	x := &ModuleIndex{byName: map[string]ModInfo{}, byAlias: map[string][]string{}, builtin: map[string]bool{}}
	for _, m := range mods {
		x.byName[m.Name] = m
		for _, a := range m.Aliases {
			x.byAlias[a] = append(x.byAlias[a], m.Name)
		}
	}
	for _, a := range x.byAlias {
		sort.Strings(a)
	}
	for _, b := range builtin {
		x.builtin[modName(b)] = true
	}
	return x
}

// lookup returns the module called name, or a module whose alias is
// exactly name: one that chosen reports true for if any (ext4's softdep
// "crc32c" is satisfied by an already chosen crc32c_generic, not by adding
// crc32_arm_ce, which needs CPU instructions a Pi 2 lacks), else the first
// by name; ok is false when neither exists.
func (x *ModuleIndex) lookup(name string, chosen func(string) bool) (ModInfo, bool) {
	if m, ok := x.byName[modName(name)]; ok {
		return m, true
	}
	a := x.byAlias[name]
	for _, n := range a {
		if chosen(n) {
			return x.byName[n], true
		}
	}
	if len(a) > 0 {
		return x.byName[a[0]], true
	}
	return ModInfo{}, false
}

// Resolve returns the modules to load for names, each after everything it
// depends on: its softdep "pre:" modules, then its depends, then itself,
// then its softdep "post:" modules. Each module appears once; the order is
// fixed by the order of names. A name that is neither a module nor built
// in is an error; a soft dependency that is neither is skipped (it is only
// a hint).
func (x *ModuleIndex) Resolve(names []string) ([]ModInfo, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var out []ModInfo
	var visit func(name string, soft bool, chain []string) error
	visit = func(name string, soft bool, chain []string) error {
		if x.builtin[modName(name)] {
			return nil
		}
		m, ok := x.lookup(name, func(n string) bool { return state[n] != 0 })
		if !ok {
			if soft {
				return nil
			}
			if len(chain) == 0 {
				return fmt.Errorf("kernel module %q is neither in the package nor built into the kernel", name)
			}
			return fmt.Errorf("kernel module %s depends on %q, which the package does not have", strings.Join(chain, " -> "), name)
		}
		switch state[m.Name] {
		case done:
			return nil
		case visiting:
			if soft {
				return nil // a soft dependency cycle: first come, first loaded
			}
			return fmt.Errorf("kernel modules depend on each other in a cycle: %s -> %s", strings.Join(chain, " -> "), m.Name)
		}
		state[m.Name] = visiting
		chain = append(chain, m.Name)
		for _, d := range m.SoftPre {
			if err := visit(d, true, chain); err != nil {
				return err
			}
		}
		for _, d := range m.Depends {
			if err := visit(d, false, chain); err != nil {
				return err
			}
		}
		state[m.Name] = done
		out = append(out, m)
		for _, d := range m.SoftPost {
			if err := visit(d, true, chain); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if err := visit(n, false, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
