package adapter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGuard(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000_000, 0)
	type step struct {
		current, next int
		at            time.Duration
		want          verdict
	}
	tests := []struct {
		name  string
		max   float64
		steps []step
	}{
		{"growth and small removals pass", 0.5, []step{
			{10, 20, 0, verdict{apply: true}},
			{20, 10, 0, verdict{apply: true, removed: 10}},
			{10, 5, 0, verdict{apply: true, removed: 5}},
		}},
		{"nothing known yet", 0.5, []step{
			{-1, 0, 0, verdict{apply: true}},
			{0, 0, 0, verdict{apply: true}},
		}},
		{"an empty catalog is held, then applied after the hold", 0.5, []step{
			{100, 0, 0, verdict{removed: 100, started: true, wait: time.Minute}},
			{100, 0, 30 * time.Second, verdict{removed: 100, wait: 30 * time.Second}},
			{100, 0, time.Minute, verdict{apply: true, removed: 100, released: true}},
		}},
		{"recovery ends the hold", 0.5, []step{
			{100, 10, 0, verdict{removed: 90, started: true, wait: time.Minute}},
			{100, 99, 10 * time.Second, verdict{apply: true, removed: 1, released: true}},
			{99, 0, 20 * time.Second, verdict{removed: 99, started: true, wait: time.Minute}},
		}},
		{"disabled", 1, []step{
			{100, 0, 0, verdict{apply: true, removed: 100}},
		}},
		{"a stricter share", 0.1, []step{
			{100, 89, 0, verdict{removed: 11, started: true, wait: time.Minute}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := &guard{maxRemoval: tc.max, hold: time.Minute}
			for i, s := range tc.steps {
				require.Equal(t, s.want, g.judge(s.current, s.next, t0.Add(s.at)), "step %d", i)
			}
		})
	}
}
