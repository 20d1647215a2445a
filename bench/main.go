// Command bench measures custom-sd against a real Consul agent: time to the
// first complete file, propagation latency of single changes, writes per
// burst, Consul requests while idle, connections and 429s, memory and CPU.
//
//	make bench                      # the scenarios in docs/performance.md
//	go run ./bench -services 100 -instances 3 -samples 60
//	go run ./bench -services 1000 -instances 3 -samples 30 -jobs 10 -prometheus prometheus
//
// It starts its own Consul dev agent (default limits) on loopback ports, a
// counting proxy in front of it, and custom-sd behind that proxy.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/custom-sd/custom-sd/sd/consul"
)

type config struct {
	consul, customSD string
	services         int
	instances        int
	samples          int
	burst            int
	idle             time.Duration
	spacing          time.Duration
	https            bool
	hold             bool
	trace            bool
	churn            time.Duration
	churnRate        int
	backToBack       int
	extra            []string
}

type result struct {
	cfg           config
	load          time.Duration
	firstFile     time.Duration
	bareRead      time.Duration // a plain client reading the same data
	targets       int
	latency       map[string][]time.Duration
	burstWrites   int
	burstConverge time.Duration
	idleRequests  int64
	idleBytes     int64
	idleWrites    int
	churn         churnStats
	requests      int64
	limited       int64
	peakConns     int64
	directConns   float64 // most connections custom-sd reported in the first run
	peakRSS       int64
	cpu           time.Duration
	fileSize      int64
}

func main() {
	var cfg config
	var extra string
	flag.StringVar(&cfg.consul, "consul", "consul", "consul binary")
	flag.StringVar(&cfg.customSD, "custom-sd", "bin/custom-sd", "custom-sd binary")
	flag.IntVar(&cfg.services, "services", 100, "services to register")
	flag.IntVar(&cfg.instances, "instances", 3, "instances per service")
	flag.IntVar(&cfg.samples, "samples", 60, "single changes of each kind to time")
	flag.IntVar(&cfg.burst, "burst", 1000, "health flips in the one-second burst (0 to skip)")
	flag.DurationVar(&cfg.idle, "idle", time.Minute, "idle period to count requests over (0 to skip)")
	flag.DurationVar(&cfg.spacing, "spacing", 700*time.Millisecond, "pause between single changes (above custom-sd's --output.interval)")
	flag.StringVar(&extra, "args", "", "extra custom-sd flags, space separated")
	flag.DurationVar(&cfg.churn, "churn", time.Minute, "churn period to count requests and bytes over (0 to skip)")
	flag.IntVar(&cfg.churnRate, "churn-rate", 5, "changes a second during -churn")
	flag.IntVar(&cfg.backToBack, "back-to-back", -1, "new instances to register back to back, each as soon as the file shows the one before (-1: as many as -samples, 0 to skip)")
	flag.BoolVar(&cfg.trace, "trace", false, "print each timed change: when Consul acknowledged it, when the file showed it (UTC, to match custom-sd's log)")
	flag.BoolVar(&cfg.hold, "hold", false, "load the catalog, print the agent's addresses and keep it up until interrupted (for profiling)")
	flag.BoolVar(&cfg.https, "https", false, "talk to Consul over HTTPS (HTTP/2) in the speed run; the counting run is skipped. With -compare: every tool over HTTPS, through a counting proxy that terminates TLS")
	compare := flag.Bool("compare", false, "instead of the scenarios: custom-sd beside the tools given with -example, -consul-template and -prometheus (consul_sd), on one catalog")
	var cc compareConfig
	flag.StringVar(&cc.example, "example", "", "the Prometheus custom-sd example adapter binary (make alternatives)")
	flag.StringVar(&cc.consulTemplate, "consul-template", "", "the consul-template binary (make alternatives)")
	flag.StringVar(&cc.prometheus, "prometheus", "", "a Prometheus binary, to measure its consul_sd")
	flag.DurationVar(&cc.deadline, "deadline", 3*time.Minute, "how long -compare waits for each tool's first complete view")
	jobs := flag.Int("jobs", 0, "instead of the scenarios: this many jobs with overlapping selections (up to 10) in one custom-sd, beside the all-services job alone, the jobs as as many custom-sd processes, and as consul_sd jobs in one Prometheus (with -prometheus)")
	promWait := flag.Duration("prom-wait", 2*time.Minute, "with -jobs: how long Prometheus's consul_sd jobs get before their targets are counted")
	soak := flag.Duration("soak", 0, "instead of the scenarios: churn steadily for this long and sample custom-sd's memory and goroutines")
	soakEvery := flag.Duration("soak-sample", time.Minute, "sampling interval of -soak")
	flag.Parse()
	cfg.extra = strings.Fields(extra)
	if cfg.backToBack < 0 {
		cfg.backToBack = cfg.samples
	}
	topo = newTopology(cfg.services, cfg.instances)

	if *jobs > 0 {
		if err := runJobs(cfg, cc, *jobs, *promWait); err != nil {
			fmt.Fprintln(os.Stderr, "bench: jobs:", err)
			os.Exit(1)
		}
		return
	}
	if *compare {
		if err := runCompare(cfg, cc); err != nil {
			fmt.Fprintln(os.Stderr, "bench: compare:", err)
			os.Exit(1)
		}
		return
	}
	if *soak > 0 {
		if err := runSoak(cfg, *soak, *soakEvery); err != nil {
			fmt.Fprintln(os.Stderr, "bench: soak:", err)
			os.Exit(1)
		}
		return
	}

	res, err := runScenario(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	report(os.Stdout, res)
}

func runScenario(cfg config) (*result, error) {
	res := &result{cfg: cfg, latency: map[string][]time.Duration{}}
	dir, err := os.MkdirTemp("", "custom-sd-bench")
	if err != nil {
		return nil, err
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "keeping", dir)
	}

	a, err := startAgent(cfg.consul, dir, cfg.https)
	if err != nil {
		return nil, err
	}
	defer a.stop()
	start := time.Now()
	if err := a.load(cfg.services, cfg.instances); err != nil {
		return nil, err
	}
	res.load = time.Since(start)
	fmt.Fprintf(os.Stderr, "loaded %d×%d in %s\n", cfg.services, cfg.instances, res.load.Round(time.Millisecond))
	if cfg.hold {
		fmt.Fprintf(os.Stderr, "holding the agent at %s (https %s, CA %s) until interrupted\n", a.addr, a.httpsAddr, a.ca)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		return nil, errors.New("interrupted while holding the agent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	// Phase 1, custom-sd talking to Consul directly: speed.
	direct := cfg
	addr := a.addr
	if cfg.https {
		addr = "https://" + a.httpsAddr
		direct.extra = append(slices.Clone(cfg.extra), "--consul.tls.ca-file="+a.ca)
	}
	ca := ""
	if cfg.https {
		ca = a.ca
	}
	// The yardstick gets the connections custom-sd may use by default.
	if res.bareRead, err = bestBareRead(addr, ca, consul.DefaultMaxConnections); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bare client read: %s\n", res.bareRead.Round(time.Millisecond))
	run, err := startRun(ctx, direct, dir, "direct", addr)
	if err != nil {
		return nil, err
	}
	stopConns := watchConns(run.d, &res.directConns)
	res.firstFile, res.targets = run.firstFile, run.targets
	time.Sleep(2 * time.Second) // past the start-up reads
	if err := measureLatency(ctx, cfg, a, run.w, run.out, res); err != nil {
		return nil, err
	}
	if err := measureBackToBack(ctx, cfg, a, run.w, run.out, res); err != nil {
		return nil, err
	}
	if cfg.burst > 0 {
		if res.burstWrites, res.burstConverge, err = measureBurst(ctx, cfg, a, run.w, run.out); err != nil {
			return nil, err
		}
	}
	if res.peakRSS, res.cpu, err = usage(run.d.cmd.Process.Pid); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(run.out); err == nil {
		res.fileSize = fi.Size()
	}
	if cfg.https {
		// No counting proxy over HTTPS: count with custom-sd's own metrics.
		err := measureChurn(ctx, cfg, a, metricsCounter(run.d), run, res)
		stopConns()
		run.d.stop()
		return res, err
	}
	stopConns()
	run.d.stop()

	// Phase 2, behind a counting proxy: what Consul sees, from start-up
	// through a burst to an idle period.
	p, err := startProxy(a.addr)
	if err != nil {
		return nil, err
	}
	defer p.srv.Close()
	run, err = startRun(ctx, cfg, dir, "proxied", p.addr)
	if err != nil {
		return nil, err
	}
	defer run.d.stop()
	if cfg.burst > 0 {
		if _, _, err := measureBurst(ctx, cfg, a, run.w, run.out); err != nil {
			return nil, err
		}
	}
	if err := measureChurn(ctx, cfg, a, proxyCounter(p), run, res); err != nil {
		return nil, err
	}
	if cfg.idle > 0 {
		time.Sleep(30 * time.Second) // let the burst and the sweeps it owes settle (at 10,000 services over HTTP a sweep can wait 15 s)
		reqs, bytesBefore, writes := p.requests.Load(), p.bytes.Load(), run.w.count()
		fmt.Fprintf(os.Stderr, "idle for %s\n", cfg.idle)
		time.Sleep(cfg.idle)
		res.idleRequests = p.requests.Load() - reqs
		res.idleBytes = p.bytes.Load() - bytesBefore
		res.idleWrites = run.w.count() - writes
	}
	res.requests, res.limited, res.peakConns = p.requests.Load(), p.limited.Load(), p.peakConns.Load()
	return res, nil
}

// churnSettle is how long after a churn period its requests are counted,
// and by when the file must equal Consul.
const churnSettle = 30 * time.Second

// measureChurn runs the random churn period, if any, once the burst has
// settled.
func measureChurn(ctx context.Context, cfg config, a *agent, count counter, run *benchRun, res *result) error {
	if cfg.churn <= 0 {
		return nil
	}
	time.Sleep(30 * time.Second) // let the burst and the sweeps it owes settle (at 10,000 services over HTTP a sweep can wait 15 s)
	fmt.Fprintf(os.Stderr, "churn for %s at %d changes/s\n", cfg.churn, cfg.churnRate)
	before, _ := scrape(run.d.web + "/metrics")
	var err error
	res.churn, err = randomChurn(ctx, a, count, run.w, run.out, cfg.churn, churnSettle, cfg.churnRate)
	if after, errScrape := scrape(run.d.web + "/metrics"); errScrape == nil && before != nil {
		printRequestsByEndpoint(before, after)
	}
	return err
}

// printRequestsByEndpoint prints to stderr how custom-sd's requests to
// Consul between two scrapes of its metrics split by endpoint and outcome,
// to tell what a churn's requests were.
func printRequestsByEndpoint(before, after map[string]float64) {
	var keys []string
	for k := range after {
		if strings.HasPrefix(k, "custom_sd_consul_requests_total{") && after[k] > before[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(os.Stderr, "churn: %6.0f %s\n", after[k]-before[k], strings.TrimPrefix(k, "custom_sd_consul_requests_total"))
	}
}

// benchRun is one custom-sd process and its output.
type benchRun struct {
	d         *daemon
	w         *fileWatch
	out       string
	firstFile time.Duration
	targets   int
}

// startRun starts custom-sd against addr and waits for its first file,
// which must be complete.
func startRun(ctx context.Context, cfg config, dir, name, addr string) (*benchRun, error) {
	r := &benchRun{out: filepath.Join(dir, name, "custom_sd.json")}
	if err := os.Mkdir(filepath.Dir(r.out), 0o755); err != nil {
		return nil, err
	}
	var err error
	if r.w, err = watchFile(r.out); err != nil {
		return nil, err
	}
	if r.d, err = startDaemon(cfg.customSD, addr, r.out, filepath.Join(dir, name+".log"), cfg.extra...); err != nil {
		return nil, err
	}
	want := cfg.services*cfg.instances + 1 // and Consul itself
	at, err := r.w.waitFor(ctx, r.out, func(b []byte) bool { return bytes.Count(b, []byte(`"targets"`)) >= want })
	if err != nil {
		r.d.stop()
		return nil, fmt.Errorf("%s: first complete file: %w", name, err)
	}
	r.firstFile = at.Sub(r.d.start)
	b, _ := os.ReadFile(r.out)
	r.targets = bytes.Count(b, []byte(`"targets"`))
	if n := r.w.count(); n != 1 {
		r.d.stop()
		return nil, fmt.Errorf("%s: %d writes before the file was complete", name, n)
	}
	fmt.Fprintf(os.Stderr, "%s: first complete file after %s\n", name, r.firstFile.Round(time.Millisecond))
	return r, nil
}

// measureLatency times single changes: a new instance, a health flip and a
// deregistration, each from the moment Consul acknowledged the write to the
// moment the file that reflects it was renamed into place.
func measureLatency(ctx context.Context, cfg config, a *agent, w *fileWatch, out string, res *result) error {
	timeIt := func(kind string, ops api.TxnOps, cond func([]byte) bool) error {
		if err := a.txn(ops); err != nil {
			return err
		}
		t0 := time.Now()
		at, err := w.waitFor(ctx, out, cond)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		res.latency[kind] = append(res.latency[kind], max(at.Sub(t0), 0))
		if cfg.trace {
			fmt.Fprintf(os.Stderr, "%s: acknowledged %s, in the file %s, %s\n", kind, t0.UTC().Format(time.TimeOnly+".000000"), at.UTC().Format(time.TimeOnly+".000000"), at.Sub(t0).Round(time.Microsecond))
		}
		time.Sleep(cfg.spacing + rand.N(cfg.spacing/4))
		return nil
	}
	// timeInPlace rewrites one loaded instance in place: its tags, then its
	// service meta, then its port, each timed on its own. Then it puts the
	// instance back as loaded, untimed: later phases rewrite instances
	// through registerOps, which would undo the change behind their back.
	timeInPlace := func(k int) error {
		s, i := rand.N(cfg.services), rand.N(cfg.instances)
		id := instanceID(s, i)
		has := func(label string) func([]byte) bool {
			return func(b []byte) bool { return bytes.Contains(entryLine(b, id), []byte(label)) }
		}
		svc := loadedService(s, i)
		svc.Tags = append(svc.Tags, fmt.Sprintf("in-place-%d", k))
		if err := timeIt("in-place tags", serviceSetOps(s, i, svc), has(tagsLabel(s, fmt.Sprintf("in-place-%d", k)))); err != nil {
			return err
		}
		svc.Meta = map[string]string{"bench": fmt.Sprint(k)}
		if err := timeIt("in-place meta", serviceSetOps(s, i, svc), has(fmt.Sprintf(`"__meta_consul_service_metadata_bench":"%d"`, k))); err != nil {
			return err
		}
		svc.Port = 40000 + k%20000
		if err := timeIt("in-place port", serviceSetOps(s, i, svc), has(fmt.Sprintf(`"__meta_consul_service_port":"%d"`, svc.Port))); err != nil {
			return err
		}
		if err := a.txn(registerOps(s, i, api.HealthPassing)); err != nil {
			return err
		}
		loaded := fmt.Sprintf(`"__meta_consul_service_port":"%d"`, 10000+s)
		if _, err := w.waitFor(ctx, out, func(b []byte) bool {
			l := entryLine(b, id)
			return bytes.Contains(l, []byte(loaded)) && bytes.Contains(l, []byte(tagsLabel(s))) &&
				!bytes.Contains(l, []byte(`"__meta_consul_service_metadata_bench"`))
		}); err != nil {
			return fmt.Errorf("in-place: put back: %w", err)
		}
		time.Sleep(cfg.spacing)
		return nil
	}
	for k := range cfg.samples {
		s := rand.N(cfg.services)
		extra := fmt.Sprintf("extra-%d", k)
		reg := api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: nodeName(0), Service: api.AgentService{
			ID: extra, Service: serviceName(s), Port: 20000 + k,
		}}}}
		if err := timeIt("register", reg, func(b []byte) bool { return entryLine(b, extra) != nil }); err != nil {
			return err
		}
		flip := registerOps(s, 0, api.HealthCritical)
		id := instanceID(s, 0)
		if err := timeIt("health flip", flip, func(b []byte) bool {
			return bytes.Contains(entryLine(b, id), []byte(`"__meta_consul_health":"critical"`))
		}); err != nil {
			return err
		}
		// Flip it back, untimed, and let the file settle before the next change.
		if err := a.txn(registerOps(s, 0, api.HealthPassing)); err != nil {
			return err
		}
		if _, err := w.waitFor(ctx, out, func(b []byte) bool {
			return bytes.Contains(entryLine(b, id), []byte(`"__meta_consul_health":"passing"`))
		}); err != nil {
			return err
		}
		time.Sleep(cfg.spacing)
		dereg := api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: nodeName(0), Service: api.AgentService{ID: extra, Service: serviceName(s)}}}}
		if err := timeIt("deregister", dereg, func(b []byte) bool { return entryLine(b, extra) == nil }); err != nil {
			return err
		}
		if err := timeInPlace(k); err != nil {
			return err
		}
		if (k+1)%10 == 0 {
			fmt.Fprintf(os.Stderr, "latency samples: %d/%d\n", k+1, cfg.samples)
		}
	}
	return nil
}

// measureBackToBack registers new instances one after another, each as soon
// as the file shows the previous one, with no pause between: after the
// first, every change comes while the write of the one before is fresh. The first, after a quiet period, is not timed. They
// are deregistered afterwards, untimed.
func measureBackToBack(ctx context.Context, cfg config, a *agent, w *fileWatch, out string, res *result) error {
	if cfg.backToBack <= 0 {
		return nil
	}
	time.Sleep(cfg.spacing)
	var dereg api.TxnOps
	var ids []string
	for k := range cfg.backToBack + 1 {
		id := fmt.Sprintf("back-to-back-%d", k)
		s := rand.N(cfg.services)
		if err := a.txn(api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: nodeName(0), Service: api.AgentService{
			ID: id, Service: serviceName(s), Port: 20000 + k%10000,
		}}}}); err != nil {
			return err
		}
		t0 := time.Now()
		at, err := w.waitFor(ctx, out, func(b []byte) bool { return entryLine(b, id) != nil })
		if err != nil {
			return fmt.Errorf("back-to-back register: %w", err)
		}
		if k > 0 {
			res.latency["back-to-back register"] = append(res.latency["back-to-back register"], max(at.Sub(t0), 0))
		}
		ids = append(ids, id)
		dereg = append(dereg, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: nodeName(0), Service: api.AgentService{ID: id, Service: serviceName(s)}}})
	}
	for len(dereg) > 0 {
		n := min(len(dereg), 60)
		if err := a.txn(dereg[:n]); err != nil {
			return err
		}
		dereg = dereg[n:]
	}
	if _, err := w.waitFor(ctx, out, func(b []byte) bool {
		for _, id := range ids {
			if entryLine(b, id) != nil {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("back-to-back: deregister: %w", err)
	}
	time.Sleep(cfg.spacing)
	return nil
}

// measureBurst flips the health of cfg.burst instances over one second and
// counts the file writes until the file shows the final state (and two
// seconds more).
func measureBurst(ctx context.Context, cfg config, a *agent, w *fileWatch, out string) (writes int, converge time.Duration, err error) {
	before := w.count()
	final, sent, err := sendBurst(cfg, a)
	if err != nil {
		return 0, 0, err
	}
	at, err := w.waitFor(ctx, out, func(b []byte) bool {
		health := healthByID(b)
		for f, status := range final {
			if health[instanceID(f.s, f.i)] != status {
				return false
			}
		}
		return true
	})
	if err != nil {
		return 0, 0, fmt.Errorf("burst: %w", err)
	}
	converge = max(at.Sub(sent), 0)
	time.Sleep(2 * time.Second)
	writes = w.count() - before
	fmt.Fprintf(os.Stderr, "burst of %d flips: %d writes\n", cfg.burst, writes)
	return writes, converge, nil
}

// instanceRef is instance i of loaded service s.
type instanceRef struct{ s, i int }

// sendBurst flips the health of cfg.burst random instances over one second,
// 32 writes at a time, and returns the state Consul ended with for each
// instance it touched, and when the last write was acknowledged.
func sendBurst(cfg config, a *agent) (final map[instanceRef]string, sent time.Time, err error) {
	var order []instanceRef
	for range cfg.burst {
		order = append(order, instanceRef{rand.N(cfg.services), rand.N(cfg.instances)})
	}
	start := time.Now()
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	seen := map[instanceRef]int{}
	for j, f := range order {
		time.Sleep(time.Until(start.Add(time.Duration(j) * time.Second / time.Duration(cfg.burst))))
		mu.Lock()
		seen[f]++
		status := api.HealthCritical
		if seen[f]%2 == 0 {
			status = api.HealthPassing
		}
		mu.Unlock()
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := a.txn(registerOps(f.s, f.i, status)); err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, time.Time{}, fmt.Errorf("burst: %w", firstErr)
	}
	sent = time.Now()
	fmt.Fprintf(os.Stderr, "burst of %d flips sent in %s\n", cfg.burst, sent.Sub(start).Round(time.Millisecond))
	// Concurrent writes to one instance may land in any order: what counts
	// is the state Consul ended with.
	critical, _, err := a.client.Health().State(api.HealthCritical, nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	final = map[instanceRef]string{}
	for f := range seen {
		final[f] = api.HealthPassing
	}
	for _, c := range critical {
		var f instanceRef
		if _, err := fmt.Sscanf(c.ServiceID, "svc-%05d-%d", &f.s, &f.i); err == nil {
			if _, ok := final[f]; ok {
				final[f] = api.HealthCritical
			}
		}
	}
	return final, sent, nil
}

// watchConns samples custom-sd's count of connections to Consul every
// 50ms into *peak until the returned func is called.
func watchConns(d *daemon, peak *float64) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if m, err := scrape(d.web + "/metrics"); err == nil {
					*peak = max(*peak, m["custom_sd_consul_connections"])
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p+0.5)]
}

// counted prints a count, or says it was not counted.
func counted(n int64) string {
	if n < 0 {
		return "not counted"
	}
	return fmt.Sprint(n)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func report(f *os.File, r *result) {
	c := r.cfg
	proto := "HTTP"
	if c.https {
		proto = "HTTPS"
	}
	fmt.Fprintf(f, "### %d services × %d instances (%d targets), %s\n\n", c.services, c.instances, r.targets, proto)
	fmt.Fprintf(f, "custom-sd flags: `%s`; machine: %d cores, %s\n\n", strings.Join(append([]string{"(defaults)"}, c.extra...), " "), runtime.NumCPU(), runtime.Version())
	if c.https {
		fmt.Fprintln(f, "Measured with custom-sd talking to Consul directly over HTTPS (HTTP/2). The counting proxy speaks plain HTTP only, so churn requests are counted by custom-sd's own custom_sd_consul_requests_total, and bytes are not counted.")
	} else {
		fmt.Fprintln(f, "Speed is measured with custom-sd talking to Consul directly; requests, bytes and connections in a second run behind a counting proxy.")
	}
	fmt.Fprintln(f)
	fmt.Fprintln(f, "| measure | value |")
	fmt.Fprintln(f, "|---|---|")
	fmt.Fprintf(f, "| first complete file after start | %s |\n", ms(r.firstFile))
	fmt.Fprintf(f, "| a bare client reading the same data (%d connections, best of 3) / ratio | %s / %.2f× |\n", consul.DefaultMaxConnections, ms(r.bareRead), float64(r.firstFile)/float64(r.bareRead))
	for _, kind := range []string{"register", "deregister", "health flip", "in-place tags", "in-place meta", "in-place port"} {
		ds := r.latency[kind]
		fmt.Fprintf(f, "| %s → file (n=%d): p50 / p99 / max | %s / %s / %s |\n", kind, len(ds), ms(pct(ds, .5)), ms(pct(ds, .99)), ms(pct(ds, 1)))
	}
	if ds := r.latency["back-to-back register"]; c.backToBack > 0 {
		fmt.Fprintf(f, "| back-to-back register → file (n=%d): p50 / p99 | %s / %s |\n", len(ds), ms(pct(ds, .5)), ms(pct(ds, .99)))
	}
	if c.burst > 0 {
		fmt.Fprintf(f, "| burst of %d health flips in 1 s: file writes | %d |\n", c.burst, r.burstWrites)
		fmt.Fprintf(f, "| burst: last change → file shows final state | %s |\n", ms(r.burstConverge))
	}
	if c.churn > 0 {
		ch := r.churn
		perService := func(n int64) string {
			if n < 0 {
				return "not counted"
			}
			return fmt.Sprintf("%.1f", float64(n)/float64(max(ch.services, 1)))
		}
		fmt.Fprintf(f, "| churn %s, %d changes of every kind to %d services (%d written, the others on a node changed): Consul requests / bytes | %d / %s |\n", c.churn, ch.changes, ch.services, ch.written, ch.requests, counted(ch.bytes))
		fmt.Fprintf(f, "| churn: Consul requests / bytes per changed service | %s / %s |\n", perService(ch.requests), perService(ch.bytes))
		fmt.Fprintf(f, "| churn: Consul requests per change / per service written | %.1f / %.1f |\n", float64(ch.requests)/float64(max(ch.changes, 1)), float64(ch.requests)/float64(max(ch.written, 1)))
		fmt.Fprintf(f, "| churn: last change → file equals Consul, label by label | %s |\n", ch.convergence(churnSettle))
	}
	if c.idle > 0 && !c.https {
		fmt.Fprintf(f, "| idle %s: Consul requests / bytes / file writes | %d / %d / %d |\n", c.idle, r.idleRequests, r.idleBytes, r.idleWrites)
	}
	fmt.Fprintf(f, "| first run: most connections to Consul at once (custom-sd's own count) | %.0f |\n", r.directConns)
	if !c.https {
		fmt.Fprintf(f, "| second run (start-up, burst, churn, idle): Consul requests / 429 answers | %d / %d |\n", r.requests, r.limited)
		fmt.Fprintf(f, "| second run: most connections to Consul at once | %d |\n", r.peakConns)
	}
	fmt.Fprintf(f, "| first run: custom-sd peak RSS / CPU time | %.1f MiB / %.2f s |\n", float64(r.peakRSS)/(1<<20), r.cpu.Seconds())
	fmt.Fprintf(f, "| output file size | %d bytes |\n\n", r.fileSize)
}
