// Package adapter turns any service discovery into a Prometheus file_sd file.
//
// Implement Discoverer for the system you want to bridge, hand it to New with
// an output path, and Run the returned Adapter. The adapter keeps the latest
// target group per source, converts the full set into file_sd groups,
// rewrites the file atomically only when its content changes, and paces
// writes during bursts of updates. Until every discoverer has sent its first complete set, nothing is
// written, so a restart never replaces a good file with a partial one.
//
// # The path of an update
//
//	a discoverer sends groups     (the discoverer's goroutine)
//	  → the manager encodes them  manager.go, filesd.go  (Run's loop)
//	  → the pacer says when       pace.go
//	  → each output renders,      output.go, writer.go
//	    guards and writes         guard.go, atomic.go
//	  → the snapshot is served    snapshot.go (Adapter.Snapshot)
//
// Run's loop is the only goroutine the adapter has besides the
// discoverers' own (and, with several discoverers, one per discoverer that
// merges their sends). It owns the manager and the outputs; the snapshot,
// readiness and metrics are published for other goroutines to read.
//
// # What is announced is served
//
// Each turn of the loop publishes the snapshot and readiness before it
// logs or counts what the outputs did. A log line ("Output file is
// complete", which comes once per file when the adapter becomes ready) or a
// metric that says a set was written finds Snapshot serving it and Ready
// counting it.
package adapter

import (
	"context"
	"strings"

	"github.com/prometheus/common/model"
)

// Group is a set of targets that share a source, with labels common to all
// of them. It has the shape of Prometheus's targetgroup.Group.
//
// A Group handed to the adapter must not be modified afterwards.
type Group struct {
	// Targets holds one label set per target. Each must carry an
	// "__address__" label; other labels override Labels for that target.
	Targets []model.LabelSet
	// Labels apply to every target in the group.
	Labels model.LabelSet
	// Source identifies the group within its discoverer. A later group with
	// the same Source replaces it; one without targets deletes it.
	Source string
}

// Discoverer provides target groups. It has the shape of Prometheus's
// discovery.Discoverer.
type Discoverer interface {
	// Run sends target groups on up until ctx is cancelled, then returns.
	// The first send must hold the complete initial set: the adapter writes
	// nothing before every discoverer has sent once. Later sends may hold only
	// the groups that changed; a group with no targets deletes its Source.
	// Run must not close up, and every send must also select on ctx.Done().
	Run(ctx context.Context, up chan<- []*Group)
}

// Staged is implemented by a Discoverer that sends its initial set in
// parts, so that the adapter converts groups as they come instead of the
// discoverer holding them all: its sends are partial, and the adapter
// writes nothing, until one of them holds Complete.
type Staged interface {
	Discoverer
	// Staged reports whether the discoverer sends its initial set in parts.
	Staged() bool
}

// Complete, in a send of a Staged discoverer, says that its groups sent so
// far make its complete initial set. It is a marker, not a group.
var Complete = &Group{Source: "\x00complete"}

// Settled, in a send, says that the discoverer has caught up with its
// source after a busy period: the groups sent so far are what the source
// holds, and no more changes are expected soon. The adapter hands such a
// send to the outputs at once, even while it paces a burst of changes, but
// at most once per pacing gap, so that a reader's share of work stays
// bounded. It is a marker, not a group; a discoverer that never sends it is
// paced by the adapter's measure of the changes alone.
var Settled = &Group{Source: "\x00settled"}

// staged reports whether d sends its initial set in parts.
func staged(d Discoverer) bool {
	s, ok := d.(Staged)
	return ok && s.Staged()
}

// Key identifies a group across discoverers: the name the discoverer was
// registered under and the group's Source.
type Key struct {
	Provider string
	Source   string
}

func (k Key) String() string { return k.Provider + "/" + k.Source }

// compareKeys orders keys by provider, then source.
func compareKeys(a, b Key) int {
	if c := strings.Compare(a.Provider, b.Provider); c != 0 {
		return c
	}
	return strings.Compare(a.Source, b.Source)
}
