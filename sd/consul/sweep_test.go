package consul

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
)

// Sweep debt holds probing to a fifth of the time; first reads of services
// (all of them at start) are owed in any mode and must not hold back the
// first sweep that follows. The clock is synctest's, so the sweep takes
// exactly one second.
func TestSweepDebtCountsProbesOnly(t *testing.T) {
	tests := []struct {
		name         string
		size, probes int
		want         time.Duration
	}{
		{"first reads only, as at start", 10000, 0, 0},
		{"probes only", 10000, 10000, sweepDebtFactor * time.Second},
		{"half probes, half first reads", 100, 50, sweepDebtFactor * time.Second / 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &run{logger: log.NewNopLogger(), services: map[string]*service{}}
				r.sw = &sweeper{sweeping: true, started: time.Now(), size: tc.size, probes: tc.probes}
				time.Sleep(time.Second)
				r.sweepDone()
				require.Equal(t, tc.want, r.sw.debt)
				require.Equal(t, max(tc.want-sweepAllowance, 0), r.sw.wait(), "the next sweep's wait")
			})
		})
	}
}
