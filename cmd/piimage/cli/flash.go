package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"testing/fstest"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/piimage/piimage/image"
	"github.com/piimage/piimage/image/flash"
	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/rootfs"
)

func flashCommand() command {
	return command{
		name:  "flash",
		short: "write an image to an SD card, verified (--device /dev/sdX, --overlay/--hostname to make it another node's card)",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			env := flashEnv{stdin: os.Stdin, askTTY: flash.IsTerminal(os.Stdin)}
			if f, ok := stderr.(*os.File); ok {
				env.progressTTY = flash.IsTerminal(f)
				env.askTTY = env.askTTY && env.progressTTY
			}
			return runFlash(ctx, args, stdout, stderr, env)
		},
	}
}

// flashEnv is what runFlash takes from the process; tests fake it.
type flashEnv struct {
	stdin       io.Reader
	askTTY      bool // a person can answer on stdin (stdin and stderr are terminals)
	progressTTY bool // stderr is a terminal: draw a progress bar
	sys         flash.System
	now         func() time.Time
}

type flashFlags struct {
	device   string
	toFile   string
	list     bool
	yes      bool
	maxSize  string
	overlay  string
	hostname string
	address  string
	grow     bool
}

func runFlash(ctx context.Context, args []string, stdout, stderr io.Writer, env flashEnv) error {
	var f flashFlags
	fset := newFlagSet("flash", "flash IMAGE (--device /dev/sdX | --to-file FILE) [flags] | flash --list", stderr)
	fset.StringVar(&f.device, "device", "", "whole removable disk to write, e.g. /dev/sdb or /dev/mmcblk0 (see --list)")
	fset.StringVar(&f.toFile, "to-file", "", "write a copy of the (changed) image to this new regular file instead of a device")
	fset.BoolVar(&f.list, "list", false, "list the disks that could be written, and whether piimage would")
	fset.BoolVar(&f.yes, "yes", false, "do not ask for confirmation (for scripts)")
	fset.StringVar(&f.maxSize, "max-size", "256G", "refuse disks larger than this (256G, 512GB, 1T)")
	fset.StringVar(&f.overlay, "overlay", "", "put this node overlay on the card instead of the image's own (validated first)")
	fset.StringVar(&f.hostname, "hostname", "", "derive the node from the image's overlay with this hostname")
	fset.StringVar(&f.address, "address", "", "derive the node from the image's overlay with this eth0 address, e.g. 192.168.1.11/24")
	fset.BoolVar(&f.grow, "grow", false, "grow the data partition to fill the card (data partitions holding only the overlay)")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	maxSize, err := flash.ParseSize(f.maxSize)
	if err != nil {
		return &usageError{"flash: --max-size: " + err.Error()}
	}
	if f.list {
		if len(pos) > 0 || f.device != "" || f.toFile != "" {
			return &usageError{"flash: --list takes no image and no --device"}
		}
		return listDisks(stdout, env.sys, maxSize)
	}
	switch {
	case len(pos) != 1:
		return &usageError{"flash: name one image file (piimage flash IMAGE --device /dev/sdX)"}
	case (f.device == "") == (f.toFile == ""):
		return &usageError{"flash: give exactly one of --device DEVICE or --to-file FILE"}
	case f.grow && f.toFile != "":
		return &usageError{"flash: --grow fills a card; a file has no size to fill"}
	}
	im, err := flash.OpenImage(pos[0])
	if err != nil {
		return err
	}
	defer im.Close()
	node, err := newNodeOverlay(im, f)
	if err != nil {
		return err
	}
	var t *flash.Target
	if f.toFile != "" {
		if node != nil {
			if err := node.apply(im, 0, f.grow, stderr); err != nil {
				return err
			}
		}
		if t, err = flash.CreateFile(f.toFile, im.Size()); err != nil {
			return err
		}
	} else {
		d, err := env.sys.Lookup(f.device)
		if err != nil {
			return err
		}
		if err := flash.Check(d, flash.Policy{MaxSize: maxSize, ImageSize: im.Size()}); err != nil {
			return err
		}
		if err := confirm(d, f.yes, env, stderr); err != nil {
			return err
		}
		end := int64(0)
		if f.grow {
			end = d.Size
		}
		if node != nil || f.grow {
			if node == nil {
				if node, err = imageOverlay(im); err != nil {
					return err
				}
			}
			if err := node.apply(im, end, f.grow, stderr); err != nil {
				return err
			}
		}
		if t, err = env.sys.OpenDevice(d); err != nil {
			return err
		}
	}
	defer t.Close()
	pp := &flash.ProgressPrinter{W: stderr, Terminal: env.progressTTY}
	res, err := flash.Write(ctx, im, t, flash.Options{Progress: pp.Update, Now: env.now})
	pp.Finish()
	if err != nil {
		if f.toFile != "" {
			os.Remove(f.toFile) // a partial copy is no use
		}
		return err
	}
	who := "the image's node"
	if node != nil {
		who = node.node.Hostname
	}
	fmt.Fprintf(stdout, "flashed %s to %s (%s): %d MiB written and verified (write %s, %.1f MB/s; verify %s), %d MiB of free data blocks left alone\n",
		pos[0], t.Path, who, res.Bytes>>20, res.WriteTime.Round(time.Millisecond), float64(res.Bytes)/res.WriteTime.Seconds()/1e6,
		res.VerifyTime.Round(time.Millisecond), res.Skipped>>20)
	if t.Device != nil {
		fmt.Fprintf(stdout, "the card is synced: you can remove it (or run 'eject %s' first)\n", t.Path)
	}
	return nil
}

// listDisks prints the disks flash could write.
func listDisks(w io.Writer, sys flash.System, maxSize int64) error {
	ds, err := sys.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSIZE\tMODEL\tREMOVABLE\tMOUNTED\tFLASH?")
	for _, d := range ds {
		model := strings.TrimSpace(d.Vendor + " " + d.Model)
		if model == "" {
			model = "-"
		}
		removable := "no"
		if d.Removable {
			removable = "yes"
		}
		mounted := "no"
		if len(d.Mounts) > 0 {
			mounted = strings.Join(d.Mounts, ", ")
		}
		verdict := "yes"
		var re *flash.RefusedError
		if err := flash.Check(d, flash.Policy{MaxSize: maxSize}); errors.As(err, &re) {
			var whys []string
			for _, p := range re.Problems {
				whys = append(whys, p.Why)
			}
			verdict = "no: " + strings.Join(whys, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\t%s\t%s\n", d.Path, flash.FormatSize(d.Size), model, removable, d.RemovableWhy, mounted, verdict)
	}
	if len(ds) == 0 {
		fmt.Fprintln(tw, "(no disks)")
	}
	return tw.Flush()
}

// confirm asks a person to type "yes" before d is overwritten.
func confirm(d *flash.Device, yes bool, env flashEnv, stderr io.Writer) error {
	if yes {
		return nil
	}
	if !env.askTTY || env.stdin == nil {
		return fmt.Errorf("refusing to overwrite %s without confirmation: there is no terminal to ask on; pass --yes to confirm in a script", d.Describe())
	}
	fmt.Fprintf(stderr, "About to ERASE %s\n  vendor %q, model %q, %d bytes, removable: %s\n", d.Describe(), d.Vendor, d.Model, d.Size, d.RemovableWhy)
	if len(d.Partitions) == 0 {
		fmt.Fprintln(stderr, "  no partitions")
	}
	for _, p := range d.Partitions {
		fmt.Fprintf(stderr, "  partition /dev/%s, %s\n", p.Name, flash.FormatSize(p.Size))
	}
	fmt.Fprintf(stderr, "Everything on it will be lost. Type yes to continue: ")
	line, err := bufio.NewReader(env.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if strings.TrimSpace(line) != "yes" {
		return errors.New("not confirmed: nothing was written")
	}
	return nil
}

// nodeOverlay is the overlay that goes on the card.
type nodeOverlay struct {
	data []byte
	node *overlays.Node
}

// imageOverlay reads and validates the image's own node.yaml.
func imageOverlay(im *flash.Image) (*nodeOverlay, error) {
	data, err := im.BootFile("node.yaml")
	if err != nil {
		return nil, fmt.Errorf("the image has no overlay to start from (%w); pass --overlay FILE", err)
	}
	n, err := overlays.Parse("node.yaml in the image", data)
	if err != nil {
		return nil, err
	}
	return &nodeOverlay{data: data, node: n}, nil
}

// newNodeOverlay returns the overlay the flags ask for, validated, or nil
// when the card keeps the image's own.
func newNodeOverlay(im *flash.Image, f flashFlags) (*nodeOverlay, error) {
	if f.overlay == "" && f.hostname == "" && f.address == "" {
		return nil, nil
	}
	old, err := imageOverlay(im)
	if err != nil && f.overlay == "" {
		return nil, err
	}
	var ov *nodeOverlay
	if f.overlay != "" {
		n, err := overlays.Load(f.overlay)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(f.overlay)
		if err != nil {
			return nil, err
		}
		ov = &nodeOverlay{data: data, node: n}
	} else {
		ov = old
	}
	if f.hostname != "" || f.address != "" {
		data, err := editOverlay(ov.data, f.hostname, f.address)
		if err != nil {
			return nil, err
		}
		n, err := overlays.Parse("node.yaml with --hostname/--address", data)
		if err != nil {
			return nil, err
		}
		ov = &nodeOverlay{data: data, node: n}
	}
	if old != nil {
		if err := compatible(im, old.node, ov.node); err != nil {
			return nil, err
		}
	}
	return ov, nil
}

// compatible refuses an overlay the image was not built for: another
// board, or web versus load balancer (the data partition differs).
func compatible(im *flash.Image, old, n *overlays.Node) error {
	board := old.BoardOrDefault()
	if rel, err := im.BootFile(image.SlotDir("a") + "/release.json"); err == nil {
		var r rootfs.Release
		if json.Unmarshal(rel, &r) == nil && r.Board != "" {
			board = r.Board
		}
	}
	if n.BoardOrDefault() != board {
		return fmt.Errorf("the overlay is for board %s but the image was built for %s: build an image for that board (piimage build --overlay FILE)", n.BoardOrDefault(), board)
	}
	if old.IsLB() != n.IsLB() {
		return fmt.Errorf("the overlay has role %s but the image was built for role %s, whose data partition differs: build an image for that role", n.Role, old.Role)
	}
	return nil
}

// apply puts the overlay on the image's FAT and, where the data partition
// holds nothing else, rebuilds it with the overlay as its last good copy
// (growing it to end when end is set).
func (o *nodeOverlay) apply(im *flash.Image, end int64, grow bool, stderr io.Writer) error {
	if err := im.ReplaceBootFile("node.yaml", o.data); err != nil {
		return err
	}
	tree := fstest.MapFS{
		".":                 {Mode: fs.ModeDir | 0o755},
		"piimage":           {Mode: fs.ModeDir | 0o700},
		rootfs.LastGoodPath: {Data: o.data, Mode: 0o600},
	}
	err := im.ReplaceData(end, tree)
	var dn *flash.DataNotEmptyError
	switch {
	case errors.As(err, &dn) && grow:
		return fmt.Errorf("cannot --grow: %w. Flash without --grow (the card's extra space stays unused)", err)
	case errors.As(err, &dn):
		fmt.Fprintf(stderr, "note: the data partition holds more than the overlay, so its last good copy keeps the image's overlay; the node replaces it from the new node.yaml at first boot\n")
		return nil
	}
	return err
}

// editOverlay sets hostname and/or interfaces.eth0.address in overlay
// YAML, changing only those values' text so comments and layout stay.
func editOverlay(data []byte, hostname, address string) ([]byte, error) {
	if address != "" {
		if _, err := netip.ParsePrefix(address); err != nil {
			return nil, &usageError{fmt.Sprintf("flash: --address %q: want an address with its prefix length, like 192.168.1.11/24", address)}
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil, fmt.Errorf("reading the overlay to edit it: %v", err)
	}
	type edit struct {
		node  *yaml.Node
		value string
	}
	var edits []edit
	if hostname != "" {
		v := mapValue(doc.Content[0], "hostname")
		if v == nil {
			return nil, errors.New("the overlay has no hostname to change")
		}
		edits = append(edits, edit{v, hostname})
	}
	if address != "" {
		v := mapValue(mapValue(mapValue(doc.Content[0], "interfaces"), "eth0"), "address")
		if v == nil {
			return nil, errors.New("the overlay has no interfaces.eth0.address to change")
		}
		edits = append(edits, edit{v, address})
	}
	lines := strings.SplitAfter(string(data), "\n")
	for _, e := range edits {
		if e.node.Kind != yaml.ScalarNode || e.node.Line < 1 || e.node.Line > len(lines) {
			return nil, fmt.Errorf("line %d: cannot edit this value", e.node.Line)
		}
		l := lines[e.node.Line-1]
		col := e.node.Column - 1
		if col < 0 || col > len(l) {
			return nil, fmt.Errorf("line %d: cannot edit this value", e.node.Line)
		}
		n := len(e.node.Value)
		if e.node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			q := l[col]
			end := strings.IndexByte(l[col+1:], q)
			if end < 0 {
				return nil, fmt.Errorf("line %d: cannot edit a quoted value spanning lines", e.node.Line)
			}
			n = end + 2
		} else if !strings.HasPrefix(l[col:], e.node.Value) {
			return nil, fmt.Errorf("line %d: cannot edit this value in place", e.node.Line)
		}
		lines[e.node.Line-1] = l[:col] + e.value + l[col+n:]
	}
	return []byte(strings.Join(lines, "")), nil
}

// mapValue returns the value of key in mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
