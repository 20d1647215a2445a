package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// bareRead times what a plain client needs to read the catalog once: the
// service list, then every service's instances with their checks, conns
// requests at a time over kept-alive connections, decoded as any client
// would. It is the yardstick for custom-sd's first complete file, which
// does the same reads and also converts and writes them.
func bareRead(addr, ca string, conns int) (took time.Duration, instances int, err error) {
	transport := &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns, ForceAttemptHTTP2: true}
	// Idle connections count against the agent's limit for this address
	// until they are closed.
	defer transport.CloseIdleConnections()
	conf := &api.Config{Address: addr, Transport: transport}
	if ca != "" {
		conf.Scheme, conf.TLSConfig.CAFile = "https", ca
	}
	client, err := api.NewClient(conf)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	names, _, err := client.Catalog().Services(nil)
	if err != nil {
		return 0, 0, fmt.Errorf("bare read: %w", err)
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
	)
	sem := make(chan struct{}, conns)
	for name := range names {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			entries, _, err := client.Health().Service(name, "", false, nil)
			mu.Lock()
			defer mu.Unlock()
			instances += len(entries)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, 0, fmt.Errorf("bare read: %w", firstErr)
	}
	return time.Since(start), instances, nil
}

// bestBareRead is the fastest of three bare reads.
func bestBareRead(addr, ca string, conns int) (time.Duration, error) {
	var best time.Duration
	for range 3 {
		took, _, err := bareRead(addr, ca, conns)
		if err != nil {
			return 0, err
		}
		if best == 0 || took < best {
			best = took
		}
	}
	time.Sleep(time.Second) // until the agent has seen the connections close
	return best, nil
}

// churnStats is what a churn period cost.
type churnStats struct {
	changes  int // writes to Consul
	services int // distinct services whose targets they changed
	written  int // of which those written, not on a node changed (randomChurn only)
	kinds    string
	requests int64
	bytes    int64 // -1 where not counted
	// With randomChurn: labels or targets of the file that differ from
	// Consul's after the settle time, and if none, how long after the last
	// change the file was last replaced.
	wrong    int
	converge time.Duration
	// undo puts the catalog back: deregisters the instances still added,
	// and sets the instances left critical passing again.
	undo api.TxnOps
}

// counter reads the Consul requests and response bytes seen so far.
type counter func() (requests, bytes int64)

// proxyCounter counts at the counting proxy.
func proxyCounter(p *proxy) counter {
	return func() (int64, int64) { return p.requests.Load(), p.bytes.Load() }
}

// metricsCounter counts with custom-sd's own request counter, for runs
// without the proxy (HTTPS); bytes are not counted.
func metricsCounter(d *daemon) counter {
	return func() (int64, int64) {
		m, err := scrape(d.web + "/metrics")
		if err != nil {
			return -1, -1
		}
		var n float64
		for k, v := range m {
			if strings.HasPrefix(k, "custom_sd_consul_requests_total{") {
				n += v
			}
		}
		return int64(n), -1
	}
}

// undoableChurn, for the side by side (whose tools must see the same
// changes, undone between them), changes the catalog rate times a second
// for d: in turn, a new instance of a random service, a health flip of a
// random instance, and the deregistration of the oldest instance it added.
// It counts the requests and response bytes from the start until settle
// after the end, which includes the reads the changes caused.
func undoableChurn(ctx context.Context, cfg config, a *agent, count counter, d, settle time.Duration, rate int) (churnStats, error) {
	var st churnStats
	touched := map[int]bool{}
	type added struct{ s, k int }
	var live []added
	critical := map[[2]int]bool{}
	reqs, bytes := count()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for k, end := 0, time.Now().Add(d); time.Now().Before(end); k++ {
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-tick.C:
		}
		var ops api.TxnOps
		var s int
		switch {
		case k%3 == 0 || len(live) == 0:
			s = rand.N(cfg.services)
			live = append(live, added{s, k})
			ops = api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: nodeName(0), Service: api.AgentService{
				ID: fmt.Sprintf("churn-%d", k), Service: serviceName(s), Port: 30000 + k%30000,
			}}}}
		case k%3 == 1:
			s = rand.N(cfg.services)
			i := rand.N(cfg.instances)
			status := api.HealthCritical
			if critical[[2]int{s, i}] {
				status = api.HealthPassing
			}
			critical[[2]int{s, i}] = status == api.HealthCritical
			ops = registerOps(s, i, status)
		default:
			old := live[0]
			live, s = live[1:], old.s
			ops = api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: nodeName(0), Service: api.AgentService{
				ID: fmt.Sprintf("churn-%d", old.k), Service: serviceName(s),
			}}}}
		}
		if err := a.txn(ops); err != nil {
			return st, fmt.Errorf("churn: %w", err)
		}
		st.changes++
		touched[s] = true
	}
	time.Sleep(settle)
	for _, old := range live {
		st.undo = append(st.undo, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: nodeName(0), Service: api.AgentService{
			ID: fmt.Sprintf("churn-%d", old.k), Service: serviceName(old.s),
		}}})
	}
	for si, down := range critical {
		if down {
			st.undo = append(st.undo, registerOps(si[0], si[1], api.HealthPassing)...)
		}
	}
	st.services = len(touched)
	reqsAfter, bytesAfter := count()
	st.requests, st.bytes = reqsAfter-reqs, bytesAfter-bytes
	if bytes < 0 {
		st.bytes = -1
	}
	return st, nil
}
