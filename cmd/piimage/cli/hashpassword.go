package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/piimage/piimage/services/balancer"
)

func hashPasswordCommand() command {
	return command{
		name:  "hash-password",
		short: "hash a password for an overlay (balancer.stats.password_hash); reads it from standard input",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return runHashPassword(args, os.Stdin, stdout, stderr)
		},
	}
}

// runHashPassword reads one line from in and prints its hash, so the clear
// password never appears on a command line or in an overlay.
func runHashPassword(args []string, in io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("hash-password", "hash-password < password.txt", stderr)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return &usageError{"hash-password: give the password on standard input, not as an argument"}
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return errors.New("hash-password: empty password")
	}
	h, err := balancer.HashPassword(pw)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, h)
	return nil
}
