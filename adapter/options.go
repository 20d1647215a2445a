package adapter

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-kit/log"
)

// Defaults for Options.
const (
	DefaultFileMode = os.FileMode(0o644)
	DefaultInterval = 500 * time.Millisecond
	// DefaultMaxRemoval is the largest share of the current targets one
	// update may remove without being held back.
	DefaultMaxRemoval = 0.5
	// DefaultRemovalHold is how long an update that removes more must keep
	// doing so before it is applied.
	DefaultRemovalHold = 5 * time.Minute
)

// Options tune an Adapter. The zero value is usable.
type Options struct {
	// Logger receives the adapter's logs; nil logs nothing.
	Logger log.Logger
	// FileMode is the output file's permission bits; 0 means DefaultFileMode
	// (0644, readable by a Prometheus running as another user).
	FileMode os.FileMode
	// Interval is the longest a change waits during a burst of changes to
	// a small file: a change after a quiet period, or one that waits for
	// the previous write, is written at once; in a burst, writes are spaced
	// from 250ms up to Interval, or up to ten times a write's cost for a
	// large file (see pace.go). 0 means DefaultInterval.
	Interval time.Duration
	// MaxRemoval is the largest share of the current targets (0 to 1) one
	// update may remove at once. A larger removal is held back, the file and
	// the snapshot keeping the current set, until it has lasted for
	// RemovalHold. 0 means DefaultMaxRemoval; 1 or more turns the guard off.
	MaxRemoval float64
	// RemovalHold is how long a large removal must last before it is
	// applied; 0 means DefaultRemovalHold.
	RemovalHold time.Duration
	// Shards splits the targets by address into this many files, named by
	// ShardPath, so that each of several Prometheus servers reads its own
	// share (see ShardOf). 0 or 1 writes one file.
	Shards int
}

// FieldError reports an invalid field of a configuration. Its message may
// name other fields in braces, "{Datacenters}", so that a program that
// presents the fields under other names (command-line flags, keys of a
// configuration file) can say which; Error shows them as they are.
type FieldError struct {
	Field string // the field's name in the configuration struct
	Err   error
}

func (e *FieldError) Error() string { return e.Format(func(field string) string { return field }) }

func (e *FieldError) Unwrap() error { return e.Err }

// Format renders the error with every field, its own and those in braces in
// the message, named by name.
func (e *FieldError) Format(name func(field string) string) string {
	msg := e.Err.Error()
	var b strings.Builder
	for {
		open := strings.IndexByte(msg, '{')
		end := strings.IndexByte(msg[open+1:], '}')
		if open < 0 || end < 0 {
			b.WriteString(msg)
			break
		}
		b.WriteString(msg[:open])
		b.WriteString(name(msg[open+1 : open+1+end]))
		msg = msg[open+1+end+1:]
	}
	return name(e.Field) + ": " + b.String()
}

// Validate reports the first invalid field as a *FieldError.
func (o Options) Validate() error {
	switch {
	case o.FileMode&^os.ModePerm != 0:
		return &FieldError{"FileMode", fmt.Errorf("%#o is not a set of permission bits such as 0644", uint32(o.FileMode))}
	case o.Interval < 0:
		return &FieldError{"Interval", fmt.Errorf("%s is negative", o.Interval)}
	case o.MaxRemoval < 0:
		return &FieldError{"MaxRemoval", fmt.Errorf("%g is negative", o.MaxRemoval)}
	case o.RemovalHold < 0:
		return &FieldError{"RemovalHold", fmt.Errorf("%s is negative", o.RemovalHold)}
	case o.Shards < 0:
		return &FieldError{"Shards", fmt.Errorf("%d is negative", o.Shards)}
	}
	return nil
}

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	if err := o.Validate(); err != nil {
		return o, err
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.FileMode == 0 {
		o.FileMode = DefaultFileMode
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxRemoval == 0 {
		o.MaxRemoval = DefaultMaxRemoval
	}
	if o.RemovalHold == 0 {
		o.RemovalHold = DefaultRemovalHold
	}
	o.Shards = max(o.Shards, 1)
	return o, nil
}

var errNoDiscoverers = errors.New("no discoverers")
