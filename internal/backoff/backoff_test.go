package backoff

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		name  string
		steps []func(*Backoff) time.Duration
		want  []time.Duration
	}{
		{
			name:  "doubles up to the cap",
			steps: repeat(6, (*Backoff).Next),
			want:  []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second},
		},
		{
			name:  "a higher floor for one attempt",
			steps: []func(*Backoff) time.Duration{(*Backoff).Next, atLeast(5 * time.Second), (*Backoff).Next},
			want:  []time.Duration{time.Second, 5 * time.Second, 10 * time.Second},
		},
		{
			name:  "reset starts over",
			steps: []func(*Backoff) time.Duration{(*Backoff).Next, (*Backoff).Next, reset, (*Backoff).Next},
			want:  []time.Duration{time.Second, 2 * time.Second, 0, time.Second},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Backoff{Min: time.Second, Max: 10 * time.Second, NoJitter: true}
			var got []time.Duration
			for _, step := range tc.steps {
				got = append(got, step(b))
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestJitterStaysBetweenHalfAndAll(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 3, time.Millisecond, time.Minute} {
		for range 1000 {
			j := Jitter(d)
			require.GreaterOrEqual(t, j, d/2)
			require.LessOrEqual(t, j, d)
		}
	}
}

func TestFailing(t *testing.T) {
	b := &Backoff{Min: time.Second, Max: time.Minute}
	require.False(t, b.Failing())
	b.Next()
	require.True(t, b.Failing())
	b.Reset()
	require.False(t, b.Failing())
}

func repeat(n int, f func(*Backoff) time.Duration) []func(*Backoff) time.Duration {
	out := make([]func(*Backoff) time.Duration, n)
	for i := range out {
		out[i] = f
	}
	return out
}

func atLeast(d time.Duration) func(*Backoff) time.Duration {
	return func(b *Backoff) time.Duration { return b.NextAtLeast(d) }
}

func reset(b *Backoff) time.Duration { b.Reset(); return 0 }
