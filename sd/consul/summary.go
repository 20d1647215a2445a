package consul

import (
	"context"
	"errors"
	"hash/maphash"
	"net/http"
	"slices"
	"time"

	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
)

// The catalog summary. In doorbell mode a change to the services table (a
// register, a deregistration, an instance rewritten) rings the service-list
// doorbell without saying which service it touched. Rather than probe every
// service, the scope reads Consul's catalog summary — what its UI shows,
// /v1/internal/ui/services: per service the instance count, the nodes and
// the tags — and reads only the services whose shape there differs from
// their last read: one catalog-sized read and one read per changed service,
// however large the catalog. The summary shows every write up to its own
// index, so it also covers the rings of those writes that come after it
// was read.
//
// A rewrite that keeps a service's shape (a new port, new meta) does not
// show in the summary, and a write whose ring the doorbell missed (another
// came right after it) may not either: the verification that follows every
// ring (verify.go) finds those.
//
// Summary reads are paced like sweeps (sweeppacer.go), with half the time
// for reading allowed. An agent that has no summary for us (an older or a
// locked-down one: 404, 403), and a scope whose health filter the agent
// applies (the summary counts every instance), use sweeps.
const (
	summaryDebtFactor = 1
	summaryAllowance  = 2 * time.Second
	summaryPath       = "/v1/internal/ui/services"
)

// shape is what the summary shows of a service's instances, hashed: their
// count, their nodes and the union of their tags.
type shape uint64

var shapeSeed = maphash.MakeSeed()

// shapeOf hashes a service's instance count, nodes and tags; nodes and tags
// count once each, in any order.
func shapeOf(count int, nodes, tags []string) shape {
	var h maphash.Hash
	h.SetSeed(shapeSeed)
	h.WriteByte(byte(count))
	h.WriteByte(byte(count >> 8))
	h.WriteByte(byte(count >> 16))
	h.WriteByte(byte(count >> 24))
	for _, list := range [][]string{nodes, tags} {
		sorted := slices.Compact(slices.Sorted(slices.Values(list)))
		for _, s := range sorted {
			h.WriteString(s)
			h.WriteByte(0)
		}
		h.WriteByte(1)
	}
	return shape(h.Sum64())
}

// shapeOfEntries is the shape of a read of a service's instances.
func shapeOfEntries(entries []*api.ServiceEntry) shape {
	var nodes, tags []string
	for _, e := range entries {
		if e == nil || e.Node == nil || e.Service == nil {
			continue
		}
		nodes = append(nodes, e.Node.Node)
		tags = append(tags, e.Service.Tags...)
	}
	return shapeOf(len(entries), nodes, tags)
}

// summaryRow is one service of the summary, as far as the shape goes.
type summaryRow struct {
	Name          string
	InstanceCount int
	Nodes         []string
	Tags          []string
}

// summaryDone is a finished summary read of a scope.
type summaryDone struct {
	sc    *scope
	rows  []summaryRow
	index uint64 // the summary shows every write up to this index
	err   error
}

// requestSummary notes a ring of the service list at index and reads the
// summary if the pacer says so; a verification follows. A ring a read
// explains (verifypacer.go) needs no summary: the write is in. A long poll
// answers within milliseconds of the write, and at 10,000 services usually
// before the ring (the service list is slower to answer), where a summary
// takes most of a second of the agent's time. A read that explains every
// ring a summary waits for cancels it (explained).
func (w *watcher) requestSummary(sc *scope, now time.Time, index uint64) {
	db := sc.doorbells
	db.unsettled = true
	if db.summaryOff {
		w.requestSweep(sc, now, index)
		return
	}
	if index == db.lastRing {
		return // the ring of another service list (another filter) for the same write
	}
	db.lastRing = max(db.lastRing, index)
	db.verify.ring(now, index)
	if index <= db.summary.covered && !db.summary.running {
		return // a summary (or a verification) read after the write showed it
	}
	if !db.verify.open[index] {
		return // a read came first with this write
	}
	db.rings = append(db.rings, index)
	if db.summary.request(now, index) {
		w.startSummary(sc, now)
	}
}

// explained notes a read that answered with index: a ring at index is
// explained, and needs no summary.
func (db *doorbells) explained(index uint64) {
	db.verify.explain(index)
	if i := slices.Index(db.rings, index); i >= 0 {
		db.rings = slices.Delete(db.rings, i, i+1)
		if len(db.rings) == 0 {
			db.summary.cancel() // a running one goes on: it serves earlier rings
		}
	}
}

// startSummary reads the summary of sc in a goroutine of its own.
func (w *watcher) startSummary(sc *scope, now time.Time) {
	db := sc.doorbells
	if db.summary.running {
		return
	}
	db.summary.start(now, 1, 1)
	db.summaryIndex = db.summary.covered
	db.rings = nil
	ctx := db.ctx
	w.wg.Go(func() {
		rows, index, err := w.readSummary(ctx, sc)
		if ctx.Err() != nil {
			return
		}
		select {
		case w.summaries <- summaryDone{sc: sc, rows: rows, index: index, err: err}:
		case <-ctx.Done():
		}
	})
}

// readSummary reads the catalog summary of sc's scope from the leader (a
// ring means a write; a lagging server might not have it yet).
func (w *watcher) readSummary(ctx context.Context, sc *scope) ([]summaryRow, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	k := sc.key
	q := (&api.QueryOptions{Datacenter: k.datacenter, Namespace: k.namespace, Partition: k.partition}).WithContext(ctx)
	var rows []summaryRow
	meta, err := w.w.client.Raw().Query(summaryPath, &rows, q)
	if err != nil {
		return nil, 0, err
	}
	return rows, meta.LastIndex, nil
}

// summarized takes in a finished summary read: it reads the services whose
// shape changed.
func (w *watcher) summarized(d summaryDone) {
	sc := d.sc
	if !w.current(sc) || sc.doorbells == nil || !sc.doorbells.summary.running {
		return
	}
	db := sc.doorbells
	now := time.Now()
	index := db.summaryIndex
	if d.err != nil {
		var se api.StatusError
		if errors.As(d.err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusForbidden) {
			db.noSummary()
			level.Info(sc.logger).Log("msg", "Consul gives no catalog summary; sweeps find catalog changes instead", "err", d.err)
		} else {
			db.summary.readFailed(now, d.err)
		}
		db.summary.finish(now)
		w.requestSweep(sc, now, index) // the change is found anyway
		return
	}
	db.coverRings(d.index)
	for _, row := range d.rows {
		s := sc.services[row.Name]
		if s == nil || !s.fetched || s.hasLongPoll() {
			continue // a read is under way, or a long poll sees it
		}
		if shapeOf(row.InstanceCount, row.Nodes, row.Tags) != s.shape {
			w.readSoon(sc, s)
		}
	}
	again := db.summary.finish(now)
	db.summaryEnd = now
	w.verifyIfDue(sc, now) // a verification that waited for this summary goes before the next
	if again {
		w.startSummary(sc, now)
	}
}

// noSummary makes every ring of the service list start a sweep, paced as
// such; sweeps leave nothing to verify.
func (db *doorbells) noSummary() {
	db.summaryOff = true
	db.pacer.factor = sweepDebtFactor
	db.rings = nil
	db.verify.cover(db.lastRing)
}

// coverRings drops the rings of writes up to index, which a catalog-wide
// read (a summary, or a verification) already showed: they need no summary
// of their own.
func (db *doorbells) coverRings(index uint64) {
	kept := db.rings[:0]
	for _, r := range db.rings {
		if r > index {
			kept = append(kept, r)
		}
	}
	db.rings = kept
	db.summary.covered = max(db.summary.covered, index)
	if len(db.rings) == 0 {
		db.summary.again = false
	}
}
