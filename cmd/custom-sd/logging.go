package main

import (
	"io"
	"log/slog"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	sloggokit "github.com/tjhop/slog-gokit"
)

// newLogger returns the base logger, filtered by level, and the logger the
// program logs with, which adds a timestamp and the caller to every line.
func newLogger(w io.Writer, format, lvl string) (base, logger log.Logger) {
	if format == "json" {
		base = log.NewJSONLogger(log.NewSyncWriter(w))
	} else {
		base = log.NewLogfmtLogger(log.NewSyncWriter(w))
	}
	base = level.NewFilter(base, level.Allow(level.ParseDefault(lvl, level.InfoValue())))
	return base, log.With(base, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)
}

// slogLogger returns a log/slog logger (exporter-toolkit logs through one)
// whose lines look like every other line: level, one ts and one caller,
// first.
func slogLogger(base log.Logger, component string) *slog.Logger {
	return slog.New(sloggokit.NewGoKitHandler(log.LoggerFunc(func(keyvals ...any) error {
		var lvl, ts, caller any
		rest := make([]any, 0, len(keyvals)+2)
		for i := 0; i+1 < len(keyvals); i += 2 {
			switch keyvals[i] {
			case slog.TimeKey:
				ts = keyvals[i+1]
				if t, ok := ts.(time.Time); ok {
					ts = t.UTC().Format(time.RFC3339Nano)
				}
			case "caller":
				caller = keyvals[i+1]
			case level.Key():
				lvl = keyvals[i+1]
			default:
				rest = append(rest, keyvals[i], keyvals[i+1])
			}
		}
		return base.Log(append([]any{level.Key(), lvl, "ts", ts, "caller", caller, "component", component}, rest...)...)
	}), slog.LevelDebug))
}
