package testconsul

import (
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

// TestStartClient: a client agent joined to a server serves the server's
// catalog, and a blocking health query through it sees a change made on
// the server.
func TestStartClient(t *testing.T) {
	t.Parallel()
	srv := Start(t)
	client := StartClient(t, srv)
	require.NotEqual(t, srv.HTTPAddr, client.HTTPAddr)
	self, err := client.Client.Agent().Self()
	require.NoError(t, err)
	require.Equal(t, false, self["Config"]["Server"], "the client agent is not a server")

	srv.Register(t, Instance{Service: "web", ID: "web-1", Port: 8080})
	var index uint64
	Eventually(t, func() bool {
		entries, meta, err := client.Client.Health().Service("web", "", false, nil)
		if err != nil || len(entries) != 1 {
			return false
		}
		index = meta.LastIndex
		return true
	}, "the client agent serves the server's catalog")
	srv.Register(t, Instance{Service: "web", ID: "web-2", Port: 8081})
	Eventually(t, func() bool {
		entries, _, err := client.Client.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: index})
		return err == nil && len(entries) == 2
	}, "a blocking query through the client agent sees the change")
}
