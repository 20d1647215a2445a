package consul

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadQueue(t *testing.T) {
	tests := []struct {
		name    string
		push    []readJob
		want    []string // names in pop order
		waiting []string // waiting after the pushes
		gen     uint64   // of the last read popped, if not 0
	}{
		{"urgent before sweep", []readJob{{name: "s1", sweep: true}, {name: "u1"}, {name: "s2", sweep: true}, {name: "u2"}},
			[]string{"u1", "u2", "s1", "s2"}, []string{"u1", "u2"}, 0},
		{"an urgent read waits once", []readJob{{name: "a"}, {name: "b"}, {name: "a"}}, []string{"a", "b"}, []string{"a", "b"}, 0},
		{"sweep reads are not merged", []readJob{{name: "a", sweep: true, probe: true}, {name: "a", sweep: true}}, []string{"a", "a"}, nil, 0},
		{"an urgent read beside a sweep read of the same service", []readJob{{name: "a", sweep: true}, {name: "a"}}, []string{"a", "a"}, []string{"a"}, 0},
		{"a service that left and came back while its read waited is read as it is now", []readJob{{name: "a", gen: 1}, {name: "a", gen: 2}, {name: "a", gen: 1}},
			[]string{"a"}, []string{"a"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newReadQueue()
			for _, j := range tc.push {
				q.push(j)
			}
			for _, name := range []string{"a", "b", "u1", "u2", "s1"} {
				require.Equal(t, slices.Contains(tc.waiting, name), q.waiting(name), "waiting(%s)", name)
			}
			var got []string
			var last readJob
			for range tc.want {
				j, ok := q.pop(t.Context())
				require.True(t, ok)
				got = append(got, j.name)
				last = j
			}
			require.Equal(t, tc.want, got)
			if tc.gen != 0 {
				require.Equal(t, tc.gen, last.gen)
			}
			require.False(t, q.waiting("a"), "popped reads no longer wait")
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, ok := q.pop(ctx)
			require.False(t, ok, "an empty queue waits until cancelled")
		})
	}
}

// The queue is idle only when no job waits and the answer of every job
// handed to a reader has been taken.
func TestReadQueueIdle(t *testing.T) {
	q := newReadQueue()
	require.True(t, q.idle())
	require.True(t, q.urgentIdle())
	q.push(readJob{name: "a"})
	q.push(readJob{name: "b", sweep: true})
	require.False(t, q.idle(), "jobs wait")
	require.False(t, q.urgentIdle(), "an urgent job waits")
	j, ok, _ := q.next()
	require.True(t, ok)
	require.False(t, j.sweep, "urgent first")
	_, ok, _ = q.next()
	require.True(t, ok)
	require.False(t, q.idle(), "two reads under way")
	require.False(t, q.urgentIdle(), "an urgent read under way")
	q.taken(false)
	require.False(t, q.idle(), "one read under way")
	require.True(t, q.urgentIdle(), "only a sweep read under way")
	q.taken(true)
	require.True(t, q.idle())
}
