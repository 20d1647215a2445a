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
// however large the catalog.
//
// A rewrite that keeps a service's shape (a new port, new meta) does not
// show in the summary. Every ring's index is the index of one write to the
// services table, so once the reads the summary asked for are done, each
// ring is explained only if a read since carries its index (as a service's
// index, or an instance's modify index; or the list of services itself
// changed at it). The summary shows every write up to its own index, so it
// also covers the rings of those writes that come after it was read.
//
// When the catalog is quiet — the summary covered a single ring, no other
// came while it was read, nor in the loneGrace after — an unexplained ring
// is such a rewrite, and a probe sweep finds it. When it is busy (5 changes
// a second at 10,000 services fill the second a summary takes), an
// unexplained ring is most likely an instance that came and went, or a
// write that a later one to the same service hid from the read: either
// leaves the file right, and a sweep for each would cost the catalog's
// size per change. Then, as for writes close enough to ring only once, a
// sweep verifies every service within VerifyInterval (10 minutes).
//
// Summary reads are paced like sweeps (sweeppacer.go), with half the time
// for reading allowed. An agent that has no summary for us (an older or a
// locked-down one: 404, 403), and a scope whose health filter the agent
// applies (the summary counts every instance), use sweeps.
const (
	summaryDebtFactor = 1
	summaryAllowance  = 2 * time.Second
	summaryPath       = "/v1/internal/ui/services"
	// loneGrace is how long the sweep for a lone unexplained ring waits
	// for the ring of another write: one the summary showed comes at once
	// (a doorbell polls again at most 10 ms after a ring).
	loneGrace = 250 * time.Millisecond
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
// summary if the pacer says so.
func (w *watcher) requestSummary(sc *scope, now time.Time, index uint64) {
	db := sc.doorbells
	if db.summaryOff {
		w.requestSweep(sc, now, index)
		return
	}
	if index == db.lastRing {
		return // the ring of another service list (another filter) for the same write
	}
	db.lastRing = max(db.lastRing, index)
	if db.lone != 0 {
		// Another write came before the sweep for a lone unexplained ring:
		// the catalog is busy after all.
		db.lone, db.loneAt = 0, time.Time{}
		db.pacer.verify(now, w.w.cfg.VerifyInterval)
	}
	if index <= db.summary.covered && !db.summary.running {
		// A summary read after the write came back before its ring: it
		// showed the write, but was explained without it.
		db.pacer.verify(now, w.w.cfg.VerifyInterval)
		return
	}
	db.rings = append(db.rings, index)
	if db.summary.request(now, index) {
		w.startSummary(sc, now)
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
	db.explaining = append(db.explaining, db.rings...)
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
// shape changed, and asks to explain the ring once those reads are done.
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
		if shapeOf(row.InstanceCount, row.Nodes, row.Tags) != s.shape && w.readSoon(sc, s, true) {
			db.summaryReads++
		}
	}
	db.explain = true
	again := db.summary.finish(now)
	if db.summaryReads == 0 {
		w.explainRings(sc, now)
	}
	if again {
		w.startSummary(sc, now)
	}
}

// noSummary makes every ring of the service list start a sweep, paced as
// such.
func (db *doorbells) noSummary() {
	db.summaryOff = true
	db.pacer.factor = sweepDebtFactor
	db.rings, db.explaining, db.explain, db.summaryReads = nil, nil, false, 0
	db.lone, db.loneAt = 0, time.Time{}
	clear(db.seen)
}

// coverRings adds the rings that came while the summary was read, of writes
// up to index that it already shows, to those it explains: they need no
// summary of their own, and a ring the summary does not show is then known
// to be alone only if no other write came before the summary was read.
func (db *doorbells) coverRings(index uint64) {
	kept := db.rings[:0]
	for _, r := range db.rings {
		if r <= index {
			db.explaining = append(db.explaining, r)
		} else {
			kept = append(kept, r)
		}
	}
	db.rings = kept
	db.summary.covered = max(db.summary.covered, index)
	if len(db.rings) == 0 {
		db.summary.again = false
	}
}

// summaryReadDone counts a read the summary asked for.
func (w *watcher) summaryReadDone(sc *scope, r read, now time.Time) {
	db := sc.doorbells
	if !r.summary || db.summaryReads == 0 {
		return
	}
	if db.summaryReads--; db.summaryReads == 0 {
		w.explainRings(sc, now)
	}
}

// explainRings asks for a sweep if some ring the summary covered is not
// explained by a read since (or by a change of the service list), and
// otherwise for a verification sweep in time.
func (w *watcher) explainRings(sc *scope, now time.Time) {
	db := sc.doorbells
	if !db.explain {
		return
	}
	db.explain = false
	var unexplained uint64
	for _, index := range db.explaining {
		if _, ok := db.seen[index]; !ok {
			unexplained = max(unexplained, index)
		}
	}
	alone := len(db.explaining) == 1 && len(db.rings) == 0
	db.explaining = nil
	db.pruneSeen()
	if unexplained == 0 || !alone {
		// Among several changes, one the summary does not show is most
		// likely an instance that came and went within the window (a
		// crash-looping one); the verification sweep finds a rewrite.
		db.pacer.verify(now, w.w.cfg.VerifyInterval)
		return
	}
	// The ring of a write the summary showed may still come (a doorbell
	// polls again after each ring); the sweep waits a little for it.
	db.lone, db.loneAt = unexplained, now.Add(loneGrace)
	level.Debug(sc.logger).Log("msg", "A catalog change the summary does not show", "index", unexplained)
}

// loneDue starts the sweep for a lone unexplained ring once its grace is
// over.
func (w *watcher) loneDue(sc *scope, now time.Time) {
	db := sc.doorbells
	if db.lone == 0 || now.Before(db.loneAt) {
		return
	}
	index := db.lone
	db.lone, db.loneAt = 0, time.Time{}
	if _, ok := db.seen[index]; ok {
		db.pruneSeen()
		db.pacer.verify(now, w.w.cfg.VerifyInterval)
		return // a long poll's read showed it during the grace
	}
	level.Debug(sc.logger).Log("msg", "No other write came with the change the summary does not show; sweeping", "index", index)
	w.requestSweep(sc, now, index)
}

// noteWrites records the write indexes a read shows (the service's own, and
// each instance's modify index) that a ring waits for or may yet come for:
// a long poll may bring the read of a write before the ring of the service
// list does.
func (db *doorbells) noteWrites(index uint64, entries []*api.ServiceEntry) {
	if db.summaryOff {
		return // rings start sweeps; none waits to be explained
	}
	low := db.lowestNeeded()
	if index >= low {
		db.seen[index] = struct{}{}
	}
	for _, e := range entries {
		if e != nil && e.Service != nil && e.Service.ModifyIndex >= low {
			db.seen[e.Service.ModifyIndex] = struct{}{}
		}
	}
}

// lowestNeeded is the lowest write index a ring may still need: that of
// the lowest ring waiting, or above the last ring.
func (db *doorbells) lowestNeeded() uint64 {
	low := db.lastRing + 1
	for _, index := range db.rings {
		low = min(low, index)
	}
	for _, index := range db.explaining {
		low = min(low, index)
	}
	if db.lone != 0 {
		low = min(low, db.lone)
	}
	return low
}

// pruneSeen forgets the write indexes no ring can need any more.
func (db *doorbells) pruneSeen() {
	low := db.lowestNeeded()
	for index := range db.seen {
		if index < low {
			delete(db.seen, index)
		}
	}
}
