package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/piimage/piimage/overlays"
)

func TestHashPassword(t *testing.T) {
	var out bytes.Buffer
	if err := runHashPassword(nil, strings.NewReader("s3cret\n"), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	h := strings.TrimSpace(out.String())
	if strings.Contains(h, "s3cret") {
		t.Fatalf("hash %q contains the password", h)
	}
	if err := overlays.CheckPasswordHashFormat(h); err != nil {
		t.Errorf("the overlay refuses the hash %q: %v", h, err)
	}
	if err := runHashPassword([]string{"s3cret"}, strings.NewReader(""), &out, io.Discard); err == nil {
		t.Error("a password given as an argument was accepted")
	}
	if err := runHashPassword(nil, strings.NewReader("\n"), &out, io.Discard); err == nil {
		t.Error("an empty password was accepted")
	}
}
