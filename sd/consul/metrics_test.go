package consul

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEndpointOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, want string
	}{
		{"service list", "/v1/catalog/services", "catalog_services"},
		{"nodes", "/v1/catalog/nodes", "catalog_nodes"},
		{"instances", "/v1/health/service/web", "health_service"},
		{"checks", "/v1/health/state/any", "health_state"},
		{"catalog summary", "/v1/internal/ui/services", "catalog_summary"},
		{"node dump", "/v1/internal/ui/nodes", "node_dump"},
		{"behind a path prefix", "/consul/v1/health/service/v1", "health_service"},
		{"something else", "/v1/agent/self", "other"},
		{"not the API", "/metrics", "other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, endpointOf(tc.path))
		})
	}
}

func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), 0)
	defer cancel2()
	boom := errors.New("connection reset")
	tests := []struct {
		name   string
		ctx    context.Context
		status int
		err    error
		want   string
	}{
		{"ok", context.Background(), 200, nil, outcomeSuccess},
		{"429", context.Background(), 429, nil, outcomeRateLimited},
		{"403", context.Background(), 403, nil, outcomeHTTPError},
		{"500", context.Background(), 500, nil, outcomeHTTPError},
		{"transport error", context.Background(), 0, boom, outcomeError},
		{"our timeout", expired, 0, context.DeadlineExceeded, outcomeTimeout},
		{"cancelled by us", canceled, 0, context.Canceled, outcomeCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			if tc.err == nil {
				resp = &http.Response{StatusCode: tc.status}
			}
			require.Equal(t, tc.want, outcomeOf(tc.ctx, resp, tc.err))
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"localhost:8500":          true,
		"127.0.0.1:8500":          true,
		"127.1.2.3:8500":          true,
		"[::1]:8500":              true,
		"https://localhost:8501":  true,
		"http://127.0.0.1/consul": true,
		"consul.example:8500":     false,
		"10.0.0.1:8500":           false,
		"https://consul:8501":     false,
	} {
		require.Equal(t, want, isLoopback(addr), addr)
	}
}
