package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/churn"
	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// convergeWithin bounds the wait for the file to equal Consul after the
// churn: generous, for a loaded machine; the time it takes belongs to the
// bench. It is far below the ten minutes a change once waited for.
const convergeWithin = 90 * time.Second

// TestFileConvergesUnderChurn: more services than long polls (doorbell
// mode), a seeded random churn of every kind of change — instances in and
// out, health flips, tags, meta, port and address rewritten in place (the
// tags keeping their service's union: the kinds Consul's catalog summary
// cannot show), node meta, node checks, services appearing and vanishing —
// and then the file equals what Consul says, target by target and label by
// label. Against a server agent and through a client agent joined to it,
// with the default connection budget and with a tight one.
func TestFileConvergesUnderChurn(t *testing.T) {
	t.Parallel()
	const services, instances, changes = 200, 3, 300
	for _, topology := range []string{"server", "client agent"} {
		for _, budget := range []struct {
			name string
			args []string
		}{{"default budget", nil}, {"8 connections", []string{"--consul.max-connections=8"}}} {
			for _, seed := range []uint64{1, 2} {
				t.Run(fmt.Sprintf("%s, %s, seed %d", topology, budget.name, seed), func(t *testing.T) {
					t.Parallel()
					srv := testconsul.Start(t)
					addr := srv.HTTPAddr
					if topology == "client agent" {
						addr = testconsul.StartClient(t, srv).HTTPAddr
					}
					model, err := churn.Populate(t.Context(), srv.Client, churn.Spec{Services: services, Instances: instances, Seed: seed})
					require.NoError(t, err)
					out := filepath.Join(t.TempDir(), "custom_sd.json")
					web := startCustomSD(t, append([]string{"--consul.server=" + addr, "--output.file=" + out}, budget.args...)...)

					requireConverges(t, srv, out, "the first file")
					require.Positive(t, scrapeMetrics(t, "http://"+web+"/metrics")["custom_sd_consul_sweep_mode"], "doorbell mode")

					st, err := churn.Run(t.Context(), srv.Client, churn.NewGenerator(model, seed), churn.Options{Changes: changes})
					require.NoError(t, err)
					t.Logf("%d changes to %d services: %s", st.Changes, len(st.Services), st.Kinds())
					requireConverges(t, srv, out, "after the churn")
				})
			}
		}
	}
}

// requireConverges waits until the file at out holds exactly the targets
// Consul's answers give, label by label, and fails with the differences
// if it does not within convergeWithin. Consul is asked again each time:
// the agents sync their own nodes in their own time.
func requireConverges(t *testing.T, srv *testconsul.Server, out, what string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		want, err := churn.Expected(t.Context(), srv.Client, ",", 8)
		require.NoError(c, err)
		got, err := churn.ReadFile(out)
		require.NoError(c, err)
		diff := churn.Diff(want, got)
		require.Empty(c, diff[:min(len(diff), 20)], "%s: the file differs from Consul in %d places, among them", what, len(diff))
	}, convergeWithin, 100*time.Millisecond, "%s: the file equals Consul", what)
}
