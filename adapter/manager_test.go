package adapter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The manager counts the hand-outs its discoverer's word let out within a
// pacing gap, for custom_sd_syncs_early_total.
func TestManagerCountsEarlyHandOuts(t *testing.T) {
	m := newManager(map[string]bool{"p": false}, 1, 500*time.Millisecond)
	t0 := time.Unix(0, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	const size = 35 << 20

	m.receive(at(0), "p", []*Group{group("web", "127.0.0.1:1")})
	require.True(t, m.due(at(0)))
	m.handedOut(at(0), at(50), size, true) // a change came meanwhile: a burst
	m.receive(at(60), "p", []*Group{group("web", "127.0.0.1:2")})
	require.False(t, m.due(at(60)))
	require.True(t, m.due(at(300)))
	m.handedOut(at(300), at(350), size, true)

	m.receive(at(400), "p", []*Group{group("web", "127.0.0.1:3")})
	require.False(t, m.due(at(400)), "within the gap")
	m.receive(at(450), "p", []*Group{Settled})
	require.True(t, m.due(at(450)), "the word lets it out")
	m.handedOut(at(450), at(500), size, false)

	require.EqualValues(t, 4, m.updates.Load())
	require.EqualValues(t, 3, m.handOuts.Load())
	require.EqualValues(t, 1, m.early.Load(), "one hand-out went out early")
}
