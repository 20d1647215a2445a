package faultproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestSetTarget: without a target the proxy looks like an agent that is
// down; once pointed at one it forwards; cleared, it is down again.
func TestSetTarget(t *testing.T) {
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "agent "+r.URL.RequestURI())
	}))
	defer agent.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	p := Start(t, "")
	get := func() (string, error) {
		resp, err := client.Get(p.URL + "/v1/catalog/services?index=7")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	_, err := get()
	require.Error(t, err, "no target: the connection closes without an answer")
	require.NoError(t, p.SetTarget(strings.TrimPrefix(agent.URL, "http://")))
	body, err := get()
	require.NoError(t, err)
	require.Equal(t, "agent /v1/catalog/services?index=7", body)
	require.NoError(t, p.SetTarget(""))
	_, err = get()
	require.Error(t, err, "target cleared")

	require.Error(t, p.SetTarget("localhost"), "no port")
}

// TestTargetDown: a target that does not answer looks the same as none.
func TestTargetDown(t *testing.T) {
	agent := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(agent.URL, "http://")
	agent.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	p := Start(t, addr)
	resp, err := client.Get(p.URL + "/v1/catalog/services")
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err)
}
