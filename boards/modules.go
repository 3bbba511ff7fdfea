package boards

// The kernel and firmware modules carry no Go code; importing them keeps
// their pinned versions in go.mod and their hashes in go.sum, so `go mod
// download` verifies every byte the builder copies into an image.
import (
	_ "github.com/gokrazy/firmware"
	_ "github.com/gokrazy/kernel.rpi"
)
