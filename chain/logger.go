package chain

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	cmtlog "github.com/cometbft/cometbft/libs/log"
)

// cometLogger adapts a *slog.Logger to CometBFT's logger.
//
// CometBFT logs several lines per block at info, so by default its info goes to slog
// Debug: a thingnet node logging at Info shows CometBFT's errors only, and at Debug
// shows CometBFT's info as well. Config.LogLevel changes the mapping (see there).
type cometLogger struct {
	l     *slog.Logger
	info  slog.Level // where CometBFT info goes, if infoOn
	debug slog.Level // where CometBFT debug goes, if debugOn

	infoOn, debugOn bool

	// stopping is set when the node is being stopped: CometBFT then logs a
	// burst of errors about closed connections and services that are part of
	// a clean shutdown; they go to Debug instead of Error.
	stopping *atomic.Bool

	// module is CometBFT's module of this logger ("blocksync", "p2p", ...).
	module string
	// blocksynced is set once block sync has handed over to consensus.
	// CometBFT v0.38 stops the block pool then but not its peers' request
	// timers: each fires 15 s later and logs "SendTimeout ... peer did not
	// send us anything" at error, on every healthy start of a network. Block
	// sync's errors after the handover go to Debug: nothing reads them.
	blocksynced *atomic.Bool
}

// blocksyncDone is what CometBFT's block sync logs (at info) when it hands
// over to consensus.
const blocksyncDone = "Time to switch to consensus reactor!"

var _ cmtlog.Logger = cometLogger{}

func newCometLogger(l *slog.Logger, level string) cometLogger {
	c := cometLogger{l: l, info: slog.LevelDebug, debug: slog.LevelDebug, infoOn: true, stopping: new(atomic.Bool), blocksynced: new(atomic.Bool)}
	switch level {
	case "error":
		c.infoOn = false
	case "info":
		c.info = slog.LevelInfo
	case "debug":
		c.info = slog.LevelInfo
		c.debugOn = true
	}
	return c
}

func (c cometLogger) Debug(msg string, keyvals ...any) {
	if c.debugOn {
		c.log(c.debug, msg, keyvals)
	}
}

func (c cometLogger) Info(msg string, keyvals ...any) {
	if c.module == "blocksync" && msg == blocksyncDone {
		c.blocksynced.Store(true)
	}
	if c.infoOn {
		c.log(c.info, msg, keyvals)
	}
}

func (c cometLogger) Error(msg string, keyvals ...any) {
	if c.stopping.Load() || (c.module == "blocksync" && c.blocksynced.Load()) {
		c.log(slog.LevelDebug, msg, keyvals)
		return
	}
	c.log(slog.LevelError, msg, keyvals)
}

func (c cometLogger) With(keyvals ...any) cmtlog.Logger {
	for i := 0; i+1 < len(keyvals); i += 2 {
		if m, ok := keyvals[i+1].(string); ok && keyvals[i] == "module" {
			c.module = m
		}
	}
	c.l = c.l.With(slogArgs(keyvals)...)
	return c
}

func (c cometLogger) log(level slog.Level, msg string, keyvals []any) {
	ctx := context.Background()
	if !c.l.Enabled(ctx, level) {
		return
	}
	c.l.Log(ctx, level, msg, slogArgs(keyvals)...)
}

// slogArgs converts CometBFT's alternating keys and values for slog. Values that are
// fmt.Stringers (hashes, lazy Sprintf values, peers) are rendered with String, when
// a handler asks for them, so that JSON handlers print them as text, not as structs.
// CometBFT's own "module" key (consensus, p2p, ...) becomes "component": the
// node's loggers already carry "module" (comet), and a JSON line must not hold
// one key twice.
func slogArgs(keyvals []any) []any {
	args := make([]any, len(keyvals))
	for i, v := range keyvals {
		if i%2 == 0 && v == "module" {
			v = "component"
		}
		if i%2 == 1 {
			if s, ok := v.(fmt.Stringer); ok {
				if _, isErr := v.(error); !isErr {
					v = stringerValue{s}
				}
			}
		}
		args[i] = v
	}
	return args
}

type stringerValue struct{ s fmt.Stringer }

func (v stringerValue) LogValue() slog.Value { return slog.StringValue(v.s.String()) }
