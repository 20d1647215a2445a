package consul

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// Requests Consul answers at once (no index) share the poller's slots, each
// held until its result is delivered; blocking queries need none.
func TestPollHoldsASlotPerImmediateRequest(t *testing.T) {
	tests := []struct {
		name  string
		slots int // 0: no slots
		known uint64
		most  int32 // most requests at once
	}{
		{"immediate requests wait for a slot", 2, 0, 2},
		{"without slots they all go at once", 0, 0, 10},
		{"blocking queries need no slot", 2, 7, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := poller{wait: time.Minute, minInterval: time.Hour}
				if tc.slots > 0 {
					p.immediate = make(chan struct{}, tc.slots)
				}
				var (
					mu        sync.Mutex
					now, most int32
				)
				fetch := func(ctx context.Context, q *api.QueryOptions) (int, *api.QueryMeta, error) {
					mu.Lock()
					now++
					most = max(most, now)
					mu.Unlock()
					time.Sleep(time.Second) // Consul answering
					mu.Lock()
					now--
					mu.Unlock()
					return 1, &api.QueryMeta{LastIndex: 10}, nil
				}
				ctx, cancel := context.WithCancel(t.Context())
				var wg sync.WaitGroup
				var delivered atomic.Int32
				for range 10 {
					wg.Go(func() {
						poll(ctx, p, tc.known, fetch, func(int, uint64) {
							time.Sleep(time.Second) // the watcher taking the result
							delivered.Add(1)
						})
					})
				}
				time.Sleep(time.Minute)
				synctest.Wait()
				require.Equal(t, int32(10), delivered.Load(), "every result delivered")
				require.Equal(t, tc.most, most)
				if tc.slots > 0 {
					require.Empty(t, p.immediate, "every slot given back")
				}
				cancel()
				wg.Wait()
			})
		})
	}
}

func TestEscapedServicePath(t *testing.T) {
	tests := []struct {
		name, path, want string
		escaped          bool
	}{
		{"a plain name", "/v1/health/service/web", "/v1/health/service/web", false},
		{"a slash", "/v1/health/service/a/b", "/v1/health/service/a%2Fb", true},
		{"dots", "/v1/health/service/../../etc/passwd", "/v1/health/service/..%2F..%2Fetc%2Fpasswd", true},
		{"a query and a fragment", "/v1/health/service/a?b#c", "/v1/health/service/a%3Fb%23c", true},
		{"a percent", "/v1/health/service/a%2Fb", "/v1/health/service/a%252Fb", true},
		{"behind a path prefix", "/consul/v1/health/service/a/b", "/consul/v1/health/service/a%2Fb", true},
		{"another endpoint", "/v1/catalog/services", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, escaped := escapedServicePath(tc.path)
			require.Equal(t, tc.escaped, escaped)
			if escaped {
				require.Equal(t, tc.want, raw)
			}
		})
	}
}
