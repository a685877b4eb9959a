package datalog

import (
	"fmt"
	"log/slog"
)

// pebbleLogger passes Pebble's messages to a slog.Logger: informational
// ones at debug level, errors at error level.
type pebbleLogger struct {
	logger *slog.Logger
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.logger.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.logger.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

// Fatalf is called by Pebble on unrecoverable errors (such as detected data
// corruption); Pebble's default logger exits the process. This one logs and
// panics, so the stack is printed.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.logger.Error(msg, "source", "pebble", "fatal", true)
	panic("datalog: pebble: " + msg)
}
