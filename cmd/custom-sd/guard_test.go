package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/faultproxy"
	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// addresses returns the targets in the output file by service ID.
func addresses(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for id, e := range readTargets(t, path) {
		out[id] = e.Targets
	}
	return out
}

// populate registers three services on srv.
func populate(t *testing.T, srv *testconsul.Server) {
	t.Helper()
	for _, in := range []testconsul.Instance{
		{Service: "web", ID: "web-1", Port: 8080},
		{Service: "web", ID: "web-2", Port: 8081},
		{Service: "db", ID: "db-1", Port: 5432},
	} {
		srv.Register(t, in)
	}
}

// TestGuardHoldsAnEmptyCatalogFromATokenWithoutRights: under default-deny
// ACLs, custom-sd started without a token sees an empty catalog (200, not
// 403). The file a previous run wrote stays, and the hold is visible in
// the log, in /metrics and in readiness.
func TestGuardHoldsAnEmptyCatalogFromATokenWithoutRights(t *testing.T) {
	t.Parallel()
	const management = "7a2c4e6f-8b0d-4f1a-9c3e-5d7f9b1a3c5e"
	srv := testconsul.Start(t, testconsul.WithACLs(management))
	populate(t, srv)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(management), 0o600))
	out := filepath.Join(dir, "custom_sd.json")

	first := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--consul.token-file="+tokenFile)
	first.waitLog(t, 1, "Output file is complete")
	require.Equal(t, 0, first.terminate(t))
	good, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Len(t, readTargets(t, out), 4, "consul, web-1, web-2, db-1")

	// No token: Consul answers 200 with nothing in it.
	d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--output.removal-hold=1h")
	d.waitLog(t, 1, "Holding back an update that would remove most targets", "current_targets=4", "new_targets=0")
	now, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, string(good), string(now), "the file is kept byte for byte")
	// The gauges are set before the log line.
	require.Equal(t, 1.0, d.metric(t, "custom_sd_removal_guard_holding", nil), "holding")
	require.Equal(t, 4.0, d.metric(t, "custom_sd_removal_guard_held_targets", nil), "held targets")
	code, _, _ := d.get(t, http.MethodGet, "/-/ready")
	require.Equal(t, http.StatusServiceUnavailable, code, "not ready while the only set is held")
	code, _, _ = d.get(t, http.MethodGet, "/targets")
	require.Equal(t, http.StatusServiceUnavailable, code, "HTTP SD does not hand out the empty set either")
	require.Equal(t, 0, d.terminate(t))
}

// TestGuardHoldsAFreshConsulReplacingAPopulatedOne: the agent is replaced
// by a fresh, empty one on the same address (a rebuild from an empty
// snapshot looks the same). The old targets stay.
func TestGuardHoldsAFreshConsulReplacingAPopulatedOne(t *testing.T) {
	t.Parallel()
	old := testconsul.Start(t)
	populate(t, old)
	// The proxy is the one address, in front of the old agent and then
	// the fresh one.
	proxy := faultproxy.Start(t, old.HTTPAddr)
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	d := startDaemon(t, "--consul.server="+proxy.Addr, "--output.file="+out, "--output.removal-hold=1h")
	d.waitLog(t, 1, "Output file is complete")

	good := addresses(t, out)
	require.NoError(t, proxy.SetTarget(""))
	old.Halt(t)
	fresh := testconsul.Start(t)
	require.NoError(t, proxy.SetTarget(fresh.HTTPAddr))
	d.waitLog(t, 1, "Consul's index went backwards; reading everything again")
	d.waitLog(t, 1, "Holding back an update that would remove most targets", "current_targets=4", "new_targets=1")
	// The old services stay. (Consul's own entry may already show the new
	// agent: its change, read before the reset was seen, removed nothing.)
	now := addresses(t, out)
	delete(good, "consul")
	delete(now, "consul")
	require.Equal(t, good, now, "the old targets stay")
	require.Equal(t, 1.0, d.metric(t, "custom_sd_removal_guard_holds_total", nil))

	// The services are registered again: the guard lets go and the file
	// follows the new truth.
	populate(t, fresh)
	fresh.Register(t, testconsul.Instance{Service: "other", ID: "other-1", Port: 7000})
	d.waitLog(t, 1, "The held-back removal went away")
	// The services come back on their own long polls, so the file may show
	// other-1 before db-1: wait for all five.
	testconsul.Eventually(t, func() bool { return len(readTargets(t, out)) == 5 }, "every target is back")
	require.True(t, hasTarget(out, "other-1")(), "other-1 is in the file")
	// The gauge is set after the file is written: wait for it.
	testconsul.Eventually(t, func() bool { return d.metric(t, "custom_sd_removal_guard_holding", nil) == 0 }, "released")
	require.Equal(t, 0, d.terminate(t))
}

// TestGuardAppliesAGenuineScaleDownAfterTheHold: three of four targets go
// away for good; after the hold time the file follows.
func TestGuardAppliesAGenuineScaleDownAfterTheHold(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	populate(t, srv)
	out := filepath.Join(t.TempDir(), "custom_sd.json")
	d := startDaemon(t, "--consul.server="+srv.HTTPAddr, "--output.file="+out, "--output.removal-hold=2s", "--output.max-removal=0.4")
	d.waitLog(t, 1, "Output file is complete")

	// Three of four targets go in one transaction. The services' long polls
	// answer on their own, so custom-sd may see db-1 go first (a quarter,
	// written) and then web's two (two thirds, held), or web's two first
	// (half, held); either way a large removal is held and then applied.
	// (One at a time, each would be a small one, and pass.)
	var ops api.TxnOps
	for _, id := range []string{"web-1", "web-2", "db-1"} {
		ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: "node-1", Service: api.AgentService{ID: id, Service: strings.TrimSuffix(strings.TrimSuffix(id, "-1"), "-2")}}})
	}
	ok, resp, _, err := srv.Client.Txn().Txn(ops, nil)
	require.NoError(t, err)
	require.True(t, ok, "%+v", resp)
	d.waitLog(t, 1, "Holding back an update that would remove most targets")
	d.waitLog(t, 1, "Applying a large removal that has lasted for the hold time")
	testconsul.Eventually(t, func() bool { return len(readTargets(t, out)) == 1 }, "only consul is left")
	// The gauge is set after the file is written: wait for it.
	testconsul.Eventually(t, func() bool { return d.metric(t, "custom_sd_removal_guard_holding", nil) == 0 }, "released")
	require.Equal(t, 0, d.terminate(t))
}
