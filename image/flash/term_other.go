//go:build !linux

package flash

import "os"

// IsTerminal reports whether f is a terminal; outside Linux it says no, so
// flash asks for --yes and prints plain progress lines.
func IsTerminal(f *os.File) bool { return false }
