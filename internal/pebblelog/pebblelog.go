// Package pebblelog passes the log messages of a Pebble store
// (github.com/cockroachdb/pebble/v2) to a slog.Logger: the one adapter
// every store of the node (data log, readings index, mailboxes, offline
// checks) gives Pebble.
package pebblelog

import (
	"fmt"
	"log/slog"
)

// Logger is a pebble.Logger. Pebble's informational messages go to debug
// level, its errors to error level, each with source=pebble.
type Logger struct {
	log  *slog.Logger
	name string
}

// New returns a Logger writing to l (nil: nowhere, for tools and tests
// that want Pebble quiet). name, the store's owner ("datalog"), starts the
// message of Fatalf's panic.
func New(l *slog.Logger, name string) Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return Logger{log: l, name: name}
}

// Infof logs an informational message at debug level.
func (p Logger) Infof(format string, args ...any) {
	p.log.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

// Errorf logs an error.
func (p Logger) Errorf(format string, args ...any) {
	p.log.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

// Fatalf is called by Pebble on unrecoverable errors (such as detected data
// corruption); Pebble's default logger exits the process. This one logs
// and panics, so that the stack is printed.
func (p Logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.log.Error(msg, "source", "pebble", "fatal", true)
	panic(p.name + ": pebble: " + msg)
}
