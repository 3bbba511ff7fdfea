//go:build !linux

package mirror

import (
	"errors"
	"log/slog"
)

// watcher is Linux-only; elsewhere the primary relies on its periodic scan.
type watcher struct{}

func newWatcher(root string, ex *excluder, log *slog.Logger) (*watcher, error) {
	return nil, errors.New("change notifications need Linux inotify")
}

func (w *watcher) Events() <-chan []change   { return nil }
func (w *watcher) Overflow() <-chan struct{} { return nil }
func (w *watcher) Close() error              { return nil }
