package consul

import (
	"context"

	"github.com/hashicorp/consul/api"
)

// probeFilter matches no instance: a probe returns only the index.
const probeFilter = `Service.ID == "custom-sd.probe.invalid"`

// readLoop reads the services of sc that q gives it, one at a time, until
// popCtx or ctx is done. A read it has begun ends only with ctx.
func (w *watcher) readLoop(ctx, popCtx context.Context, sc *scope, q *readQueue) {
	for {
		j, ok := q.pop(popCtx)
		if !ok {
			return
		}
		entries, index, err := w.readOnce(ctx, sc, j.name, j.probe)
		if ctx.Err() != nil {
			return
		}
		select {
		case w.reads <- read{sc: sc, name: j.name, gen: j.gen, index: index, entries: entries, err: err, sweep: j.sweep, probe: j.probe, outOfDate: j.outOfDate, queue: q}:
		case <-ctx.Done():
			return
		}
	}
}

// readOnce reads a service's instances without blocking; a probe reads only
// its index. These reads go to the leader even with AllowStale: a doorbell
// rang because of a write, and a lagging server might answer with the state
// from before it, which nothing would ever correct.
func (w *watcher) readOnce(ctx context.Context, sc *scope, name string, probe bool) ([]*api.ServiceEntry, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	k := sc.key
	q := (&api.QueryOptions{Datacenter: k.datacenter, Namespace: k.namespace, Partition: k.partition, Filter: k.healthFilter}).WithContext(ctx)
	if probe {
		q.Filter = probeFilter
	}
	entries, meta, err := w.w.client.Health().Service(name, "", false, q)
	if err != nil {
		return nil, 0, err
	}
	return entries, meta.LastIndex, nil
}
