package adapter

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	_, err := New(filepath.Join(t.TempDir(), "x.json"), nil, Options{})
	require.ErrorContains(t, err, "no discoverers")
	_, err = New(t.TempDir(), map[string]Discoverer{"p": newChanDiscoverer()}, Options{})
	require.ErrorContains(t, err, "is a directory")
	_, err = New(filepath.Join(t.TempDir(), "x.json"), map[string]Discoverer{"p": newChanDiscoverer()}, Options{Shards: -1})
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "Shards", fe.Field)
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  Options
		field string // "" for valid
	}{
		{"zero value", Options{}, ""},
		{"everything set", Options{FileMode: 0o640, Interval: time.Second, MaxRemoval: 1, RemovalHold: time.Minute, Shards: 3}, ""},
		{"file mode with a type bit", Options{FileMode: os.ModeDir | 0o644}, "FileMode"},
		{"negative interval", Options{Interval: -time.Second}, "Interval"},
		{"negative max removal", Options{MaxRemoval: -0.5}, "MaxRemoval"},
		{"negative removal hold", Options{RemovalHold: -time.Second}, "RemovalHold"},
		{"negative shards", Options{Shards: -2}, "Shards"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "a FieldError: %v", err)
			require.Equal(t, tc.field, fe.Field)
		})
	}
}

func TestAdapterWritesOnlyCompleteSetsAndRetriesFailedWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "not-yet")
		path := filepath.Join(dir, "out.json")
		a1, a2 := newChanDiscoverer(), newChanDiscoverer()
		a, err := New(path, map[string]Discoverer{"a": a1, "b": a2}, Options{})
		require.NoError(t, err)
		startAdapter(t, a)

		a1.in <- []*Group{group("x", "127.0.0.1:1")}
		synctest.Wait()
		require.False(t, a.Ready(), "b has not sent its first set")
		require.Nil(t, a.Snapshot(), "no complete set yet")

		// The output directory is missing: the write fails and is retried.
		// The complete set is already there to serve.
		a2.in <- []*Group{group("y", "127.0.0.1:2")}
		synctest.Wait()
		failures := a.metrics.writes.WithLabelValues("failure")
		require.Equal(t, 1.0, testutil.ToFloat64(failures))
		time.Sleep(maxRetryDelay)
		synctest.Wait()
		require.GreaterOrEqual(t, testutil.ToFloat64(failures), 2.0, "failed writes are retried")
		require.False(t, a.Ready())
		require.Equal(t, 2, a.Snapshot().Targets())
		require.Equal(t, 2.0, testutil.ToFloat64(a.metrics.targets))
		require.Zero(t, testutil.ToFloat64(a.metrics.lastWrite))

		require.NoError(t, os.Mkdir(dir, 0o755))
		time.Sleep(maxRetryDelay)
		synctest.Wait()
		require.True(t, a.Ready())
		require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.writes.WithLabelValues("success")))
		require.Positive(t, testutil.ToFloat64(a.metrics.lastWrite))
		got := readFile(t, path)
		require.Contains(t, got, "127.0.0.1:1")
		require.Contains(t, got, "127.0.0.1:2")
	})
}

// A change after a quiet period is written at once, and so is a change that
// waits for the previous write: no window delays it.
func TestAdapterWritesChangesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.json")
		d := newChanDiscoverer()
		a, err := New(path, map[string]Discoverer{"p": d}, Options{})
		require.NoError(t, err)
		startAdapter(t, a)
		writes := func() float64 { return testutil.ToFloat64(a.metrics.writes.WithLabelValues("success")) }

		d.in <- []*Group{group("web", "127.0.0.1:1")}
		synctest.Wait()
		require.Equal(t, 1.0, writes(), "the first set is written at once")
		for i := 2; i <= 5; i++ {
			d.in <- []*Group{group("web", fmt.Sprintf("127.0.0.1:%d", i))}
			synctest.Wait()
			require.Equal(t, float64(i), writes(), "a change after a write is written at once")
		}
		require.Contains(t, readFile(t, path), "127.0.0.1:5")
		require.EqualValues(t, 5, a.manager.updates.Load())
		require.EqualValues(t, 5, a.manager.handOuts.Load())
	})
}

func TestAdapterHoldsBackAMassRemoval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.json")
		d := newChanDiscoverer()
		a, err := New(path, map[string]Discoverer{"p": d}, Options{Interval: time.Millisecond, RemovalHold: time.Hour})
		require.NoError(t, err)
		startAdapter(t, a)

		d.in <- []*Group{group("web", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"), group("db", "127.0.0.1:9")}
		synctest.Wait()
		require.True(t, a.Ready())
		good := readFile(t, path)
		kept := a.Snapshot()

		// Four of five targets go: held back, in the file and the snapshot.
		d.in <- []*Group{{Source: "web"}}
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.guardHolding))
		require.Equal(t, 4.0, testutil.ToFloat64(a.metrics.guardRemoved))
		require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.guardHolds))
		require.Equal(t, good, readFile(t, path))
		require.Same(t, kept, a.Snapshot())

		// One comes back: three of five still gone, still held.
		d.in <- []*Group{group("web", "127.0.0.1:1")}
		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, 3.0, testutil.ToFloat64(a.metrics.guardRemoved))
		require.Same(t, kept, a.Snapshot())

		// Two more come back, one new: two of five gone is within the share;
		// the guard lets go.
		d.in <- []*Group{group("web", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:5")}
		time.Sleep(time.Second)
		synctest.Wait()
		require.Zero(t, testutil.ToFloat64(a.metrics.guardHolding))
		require.Equal(t, 4, a.Snapshot().Targets())
		require.Contains(t, readFile(t, path), "127.0.0.1:5", "the file follows")
		require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.guardHolds))
	})
}

func TestAdapterGuardsAFileFromAnEarlierRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.json")
		old := `[{"targets":["127.0.0.1:1","127.0.0.1:2"],"labels":{}}]` + "\n"
		require.NoError(t, os.WriteFile(path, []byte(old), 0o644))
		d := newChanDiscoverer()
		a, err := New(path, map[string]Discoverer{"p": d}, Options{RemovalHold: time.Minute})
		require.NoError(t, err)
		startAdapter(t, a)

		// An empty first set is held against the file on disk, then applied
		// once it has lasted for the hold time, with no new update needed.
		d.in <- []*Group{}
		synctest.Wait()
		require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.guardHolds))
		require.False(t, a.Ready())
		require.Nil(t, a.Snapshot())
		require.Equal(t, old, readFile(t, path))

		time.Sleep(time.Minute)
		synctest.Wait()
		require.True(t, a.Ready())
		require.Equal(t, "[]\n", readFile(t, path))
	})
}

func TestFieldErrorFormat(t *testing.T) {
	t.Parallel()
	e := &FieldError{Field: "A", Err: errors.New("cannot be combined with {B} or {C.D}")}
	require.Equal(t, "A: cannot be combined with B or C.D", e.Error())
	flags := map[string]string{"A": "--a", "B": "--b", "C.D": "--c.d"}
	require.Equal(t, "--a: cannot be combined with --b or --c.d", e.Format(func(f string) string { return flags[f] }))
	plain := &FieldError{Field: "A", Err: errors.New("no braces")}
	require.Equal(t, "A: no braces", plain.Error())
}

// stagedDiscoverer sends its initial set in parts.
type stagedDiscoverer struct{ *chanDiscoverer }

func (stagedDiscoverer) Staged() bool { return true }

// A staged discoverer's sends are partial until one holds Complete: nothing
// is written before, and the complete set is everything sent so far.
func TestAdapterWaitsForAStagedDiscoverersCompleteSet(t *testing.T) {
	for _, shards := range []int{1, 2} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "out.json")
				d := stagedDiscoverer{newChanDiscoverer()}
				var disc Discoverer = d
				if shards > 1 {
					disc = OnlyShard(d, 0, 1) // a wrapper keeps the staging
				}
				a, err := New(path, map[string]Discoverer{"p": disc}, Options{})
				require.NoError(t, err)
				startAdapter(t, a)

				d.in <- []*Group{group("web", "127.0.0.1:1")}
				d.in <- []*Group{group("db", "127.0.0.1:2"), group("web", "127.0.0.1:1", "127.0.0.1:3")}
				time.Sleep(time.Minute)
				synctest.Wait()
				require.False(t, a.Ready(), "partial sets are not written")
				require.Nil(t, a.Snapshot())
				_, err = os.Stat(path)
				require.ErrorIs(t, err, os.ErrNotExist)

				d.in <- []*Group{group("cache", "127.0.0.1:4"), Complete}
				synctest.Wait()
				require.True(t, a.Ready())
				require.Equal(t, 4, a.Snapshot().Targets())
				require.Equal(t, 1.0, testutil.ToFloat64(a.metrics.writes.WithLabelValues("success")), "one write: the complete set")
			})
		})
	}
}

// seen is what a log line found published at the moment it was logged.
type seen struct {
	msg     string
	ready   bool
	targets int // in Snapshot; -1 for none
	writes  float64
	holding float64
	holds   float64
}

// TestAnnouncementsFollowWhatIsServed: every log line the adapter writes
// finds the state it announces already published. A logger that looks at
// Ready, Snapshot and the metrics when it is called, on the adapter's own
// goroutine, sees exactly what a reader of the log would find then.
func TestAnnouncementsFollowWhatIsServed(t *testing.T) {
	for _, shards := range []int{1, 3} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var a *Adapter
				var lines []seen
				logger := log.LoggerFunc(func(kv ...any) error {
					s := seen{targets: -1}
					for i := 0; i+1 < len(kv); i += 2 {
						if kv[i] == "msg" {
							s.msg = fmt.Sprint(kv[i+1])
						}
					}
					s.ready = a.Ready()
					if snap := a.Snapshot(); snap != nil {
						s.targets = snap.Targets()
					}
					s.writes = testutil.ToFloat64(a.metrics.writes.WithLabelValues("success"))
					s.holding = testutil.ToFloat64(a.metrics.guardHolding)
					s.holds = testutil.ToFloat64(a.metrics.guardHolds)
					lines = append(lines, s)
					return nil
				})
				path := filepath.Join(t.TempDir(), "out.json")
				d := newChanDiscoverer()
				var err error
				a, err = New(path, map[string]Discoverer{"p": d}, Options{Logger: logger, Shards: shards, RemovalHold: time.Hour})
				require.NoError(t, err)
				startAdapter(t, a)

				// The first complete set: one file per shard is announced
				// complete, each once the set is served and counted.
				d.in <- []*Group{group("web", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")}
				synctest.Wait()
				complete := 0
				for _, s := range lines {
					if s.msg == "Output file is complete" {
						complete++
						require.True(t, s.ready, "ready when announced complete")
						require.Equal(t, 4, s.targets, "served when announced complete")
						require.Equal(t, float64(shards), s.writes, "every file's write counted when announced complete")
					}
				}
				require.Equal(t, shards, complete, "one line per file")

				// A mass removal: held back, and the hold is visible when
				// logged.
				lines = nil
				d.in <- []*Group{group("web", "127.0.0.1:1")}
				synctest.Wait()
				require.NotEmpty(t, lines)
				for _, s := range lines {
					require.Equal(t, "Holding back an update that would remove most targets; keeping the current ones. Is the ACL token missing read rights, or was Consul emptied?", s.msg)
					require.Equal(t, 1.0, s.holding, "the gauge shows the hold when it is logged")
					require.Positive(t, s.holds)
					require.Equal(t, 4, s.targets, "the held set is not served")
				}
			})
		})
	}
}
