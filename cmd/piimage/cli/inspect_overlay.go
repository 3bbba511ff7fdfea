package cli

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/piimage/piimage/overlays"
	"github.com/piimage/piimage/services/firewall"
)

// mask replaces a secret in inspect's output.
const mask = "********"

// describeOverlay prints an image's overlay with its secrets masked, then
// the firewall ruleset and the time servers the node will use.
func describeOverlay(w io.Writer, data []byte) {
	n, perr := overlays.Parse("node.yaml", data)
	fmt.Fprintf(w, "\noverlay (node.yaml on the boot partition; secrets masked):\n")
	for _, l := range strings.Split(strings.TrimRight(redactOverlay(data, n), "\n"), "\n") {
		fmt.Fprintf(w, "  | %s\n", l)
	}
	if perr != nil {
		fmt.Fprintf(w, "\nfirewall: the overlay is invalid; the node runs on its last good copy\n")
		return
	}
	fmt.Fprintf(w, "\nfirewall (the nftables ruleset the node installs before its services start):\n")
	for _, l := range strings.Split(strings.TrimRight(firewall.Generate(n, firewall.Options{}).String(), "\n"), "\n") {
		if l != "" {
			l = "  " + l
		}
		fmt.Fprintln(w, l)
	}
	servers := n.TimeServersOrDefault()
	if len(servers) == 0 {
		servers = []string{"none: the node's time is never trusted"}
	}
	fmt.Fprintf(w, "\ntime servers (SNTP): %s\n", strings.Join(servers, ", "))
}

// secretKey matches an overlay key whose value is a secret, quoted or not.
var secretKey = regexp.MustCompile(`(^|[\s{,])["']?(psk|pmk|password_hash)["']?\s*:`)

// flowValue is a YAML value inside a flow mapping: a quoted string or a
// plain scalar up to the next ',' or '}'.
var flowValue = regexp.MustCompile(`^\s*("(?:[^"\\]|\\.)*"?|'(?:[^']|'')*'?|[^,}#]*)`)

// redactOverlay returns the overlay text with every secret masked: the
// values of psk, pmk and password_hash keys (to the end of the line in block
// style, and the whole indented block of a | or > scalar; the value
// alone in flow style), and, when the overlay parses, every occurrence
// of those values elsewhere.
func redactOverlay(data []byte, n *overlays.Node) string {
	lines := strings.Split(string(data), "\n")
	blockIndent := -1 // masking the lines of a block scalar indented more than this
	for i, l := range lines {
		indent := len(l) - len(strings.TrimLeft(l, " \t"))
		if blockIndent >= 0 {
			if strings.TrimSpace(l) == "" || indent > blockIndent {
				if strings.TrimSpace(l) != "" {
					lines[i] = l[:indent] + mask
				}
				continue
			}
			blockIndent = -1
		}
		lines[i] = redactLine(l, indent, &blockIndent)
	}
	out := strings.Join(lines, "\n")
	if n == nil {
		return out
	}
	var secrets []string
	for _, ifc := range []*overlays.Interface{n.Interfaces.Eth0, n.Interfaces.Wlan0} {
		if ifc != nil {
			secrets = append(secrets, ifc.PSK, ifc.PMK)
		}
	}
	if n.Balancer != nil && n.Balancer.Stats != nil {
		secrets = append(secrets, n.Balancer.Stats.PasswordHash)
	}
	for _, s := range secrets {
		for _, part := range strings.Split(s, "\n") {
			if part = strings.TrimSpace(part); len(part) >= 4 {
				out = strings.ReplaceAll(out, part, mask)
			}
		}
	}
	return out
}

// redactLine masks the secret values on one line. A block scalar (| or >)
// sets *blockIndent to the line's indentation so that its lines follow.
func redactLine(l string, indent int, blockIndent *int) string {
	var b strings.Builder
	rest := l
	for {
		loc := secretKey.FindStringSubmatchIndex(rest)
		if loc == nil {
			b.WriteString(rest)
			return b.String()
		}
		keyEnd := loc[1]
		b.WriteString(rest[:keyEnd])
		value := rest[keyEnd:]
		if strings.TrimSpace(rest[:loc[4]]) == "" {
			// Block style: the key starts the line; the value is the rest.
			v := strings.TrimSpace(value)
			if strings.HasPrefix(v, "|") || strings.HasPrefix(v, ">") {
				*blockIndent = indent
			}
			if v != "" {
				b.WriteString(" " + mask)
			}
			return b.String()
		}
		m := flowValue.FindStringIndex(value)
		if m[1] > 0 {
			b.WriteString(" " + mask)
		}
		rest = value[m[1]:]
	}
}
