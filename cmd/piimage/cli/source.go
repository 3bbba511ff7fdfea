package cli

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const modulePath = "github.com/piimage/piimage"

func isSourceTree(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.TrimSpace(s.Text()) == "module "+modulePath {
			return true
		}
	}
	return false
}

// gitVersion describes the source tree's commit, or "dev" without git.
func gitVersion(src string) string {
	out, err := exec.Command("git", "-C", src, "describe", "--always", "--dirty", "--tags").Output()
	if err != nil {
		return "dev"
	}
	return strings.TrimSpace(string(out))
}

// defaultBuildTime is used when neither a flag, SOURCE_DATE_EPOCH nor git
// gives a time.
var defaultBuildTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// buildTime picks the one timestamp every file of the image gets.
func buildTime(flagValue, src string) (time.Time, error) {
	if flagValue != "" {
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("--time: %w", err)
		}
		return t.UTC(), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", s)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	out, err := exec.Command("git", "-C", src, "log", "-1", "--format=%ct").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	}
	return defaultBuildTime, nil
}
