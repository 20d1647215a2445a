package consul

import (
	"context"
	"errors"
	"hash/maphash"
	"io"
	"net/http"
	"time"

	"github.com/go-kit/log/level"
	"github.com/hashicorp/consul/api"
)

// Verification. In doorbell mode every ring of the service list is followed
// by a verification (when: verifypacer.go): one read of the catalog, and a
// read of each service whose instances differ from its last read, or whose
// nodes differ from the nodes doorbell's last list (nodediff.go). That
// includes the services with a long poll: their long poll should have
// shown the change, and usually is about to; a read without it makes sure
// that an agent whose view of the service went stale cannot keep a target
// wrong. The catalog is read whole from Consul's node dump, what its
// UI's node list shows (/v1/internal/ui/nodes): every node with its service
// instances, each with the index of its last write. A service's instances
// are compared as the sum of a hash of each one's node, ID and write index,
// kept from its last read: any rewrite (a port, an address, meta, tags), an
// instance replaced by another or one more or fewer changes the sum.
//
// It is one request, however large the catalog: at 10,000 services × 10
// instances about 136 MB, which is why it is paced. Nodes and health are
// not verified: their doorbells list them whole at every change (the node
// and health diffs). An agent that gives no node dump (404, 403) gets a
// sweep instead (doorbells.go), one request per service.
//
// Consul 1.20's handler of the node dump adds the version of the agent at
// a node's address to that node's meta when the meta has none, in the map
// it was given. Answered by a server agent, that map is the server's own
// record of the node: a node registered with an agent's address (not the
// agent's own node, which has the key) then shows the key in later reads
// of it, without a write. The Consul UI's node list does the same.
const (
	dumpPath = "/v1/internal/ui/nodes"
	// dumpWait bounds a read of the node dump, beyond requestTimeout's
	// margin: at 10,000 × 10 it takes seconds on a busy agent.
	dumpWait = time.Minute
)

var writeSeed = maphash.MakeSeed()

// instanceWrite hashes an instance's node, ID and the index of its last
// write.
func instanceWrite(node, id string, modifyIndex uint64) uint64 {
	var h maphash.Hash
	h.SetSeed(writeSeed)
	h.WriteString(node)
	h.WriteByte(0)
	h.WriteString(id)
	h.WriteByte(0)
	var b [8]byte
	for i := range b {
		b[i] = byte(modifyIndex >> (8 * i))
	}
	h.Write(b[:])
	return h.Sum64()
}

// writesOfEntries sums the write hashes of a read's instances.
func writesOfEntries(entries []*api.ServiceEntry) uint64 {
	var sum uint64
	for _, e := range entries {
		if e != nil && e.Node != nil && e.Service != nil {
			sum += instanceWrite(e.Node.Node, e.Service.ID, e.Service.ModifyIndex)
		}
	}
	return sum
}

// verifyDone is a finished read of a scope's node dump.
type verifyDone struct {
	sc     *scope
	writes map[string]uint64 // service name → the sum of its instances' write hashes
	index  uint64            // the dump shows every write up to this index
	err    error
	run    uint64 // the verification's number in its scope
}

// startVerification verifies sc: it reads the node dump in a goroutine of
// its own, or sweeps if the agent gives none.
// One that runs is abandoned (verifypacer.go): cancelled, and its answer,
// if it comes, ignored.
func (w *watcher) startVerification(sc *scope, now time.Time) {
	db := sc.doorbells
	if db.stopVerify != nil {
		db.stopVerify()
		db.stopVerify = nil
	}
	db.verify.start(now)
	db.verifyRun++
	if db.dumpOff {
		w.verifyBySweep(sc, now)
		return
	}
	ctx, cancel := context.WithCancel(db.ctx)
	db.stopVerify = cancel
	run := db.verifyRun
	w.wg.Go(func() {
		defer cancel()
		writes, index, err := w.readDump(ctx, sc)
		if ctx.Err() != nil {
			return
		}
		select {
		case w.verifications <- verifyDone{sc: sc, writes: writes, index: index, err: err, run: run}:
		case <-ctx.Done():
		}
	})
}

// verifyIfDue starts sc's verification if one is due, no summary read runs
// and no urgent read is under way, or if it has waited for those reads for
// verifyQuiet.
//
// The summary and the node dump are the agent's costliest reads: run
// together at 10,000 services they take several times as long as one after
// the other, and slow every other answer of the agent meanwhile. So a
// verification waits for a running summary (at most that one: it starts
// before the next). The reads the summary asked for, or a health change,
// may explain the rings it would verify (verifypacer.go), and are slowed by
// it too: it waits for them, but only so long, so that reads that keep
// coming cannot hold it off.
func (w *watcher) verifyIfDue(sc *scope, now time.Time) {
	db := sc.doorbells
	if at := db.verifyAt(); !at.IsZero() && !now.Before(at) {
		w.startVerification(sc, now)
	}
}

// verifyAt returns when verifyIfDue may start a verification, or zero if
// none is owed or a summary read runs (its end is a time to ask again).
func (db *doorbells) verifyAt() time.Time {
	if db.summaryOff || db.summary.running {
		return time.Time{}
	}
	due := db.verify.due()
	if due.IsZero() || db.queue.urgentIdle() {
		return due
	}
	// Or at once when the reads are in: the loop asks after each event.
	return latest(due, db.summaryEnd).Add(verifyQuiet)
}

// verifyBySweep hands the verification of every ring so far to a sweep,
// which the sweep pacer paces.
func (w *watcher) verifyBySweep(sc *scope, now time.Time) {
	db := sc.doorbells
	db.verify.finish(now, db.lastRing, nil)
	w.requestSweep(sc, now, db.lastRing)
}

// readDump reads the node dump of sc's scope from the leader and sums each
// service's write hashes, as the answer streams in: the whole answer is
// never held.
func (w *watcher) readDump(ctx context.Context, sc *scope) (map[string]uint64, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout(dumpWait))
	defer cancel()
	writes := map[string]uint64{}
	ctx = withBodyReader(ctx, func(body io.Reader) error { return sumDump(body, writes) })
	k := sc.key
	q := (&api.QueryOptions{Datacenter: k.datacenter, Namespace: k.namespace, Partition: k.partition}).WithContext(ctx)
	var empty []struct{}
	meta, err := w.w.client.Raw().Query(dumpPath, &empty, q)
	if err != nil {
		return nil, 0, err
	}
	return writes, meta.LastIndex, nil
}

// dumpService is what a verification takes of a service instance of the
// dump (dumpscan.go reads it).
type dumpService struct {
	ID          string
	Service     string
	PeerName    string
	ModifyIndex uint64
}

// readDespiteLongPoll reads s, which has a long poll, once without it: a verification
// found its last read out of date. Its long poll may only lag (the change
// is on its way), or it may have missed the change; the read makes sure.
func (w *watcher) readDespiteLongPoll(sc *scope, s *service) {
	level.Debug(sc.logger).Log("msg", "A long-polled service's last read differs from the catalog; reading it", "service", s.name, "index", s.index)
	sc.doorbells.queue.push(readJob{name: s.name, gen: s.gen, outOfDate: true})
}

// verified takes in a finished read of the node dump: it reads each service
// whose instances differ from its last read.
func (w *watcher) verified(d verifyDone) {
	sc := d.sc
	if !w.current(sc) || sc.doorbells == nil || !sc.doorbells.verify.running || d.run != sc.doorbells.verifyRun {
		return
	}
	db := sc.doorbells
	db.stopVerify = nil
	now := time.Now()
	if d.err != nil {
		var se api.StatusError
		if errors.As(d.err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusForbidden) {
			db.dumpOff = true
			db.pacer.factor = sweepDebtFactor // a sweep for every change
			level.Info(sc.logger).Log("msg", "Consul gives no node dump; sweeps verify the catalog instead", "err", d.err)
			w.verifyBySweep(sc, now)
			return
		}
		db.verify.finish(now, 0, d.err)
		level.Warn(sc.logger).Log("msg", "Cannot read the node dump to verify the catalog; retrying", "retry_in", db.verify.retryAt.Sub(now), "err", d.err)
		return
	}
	reads := 0
	for _, s := range sc.services {
		// A service read after the dump was taken knows better.
		if s.index > d.index || s.unreadable != nil {
			continue
		}
		if s.fetched && d.writes[s.name] == s.writes && sc.nodes.agrees(s) {
			continue
		}
		if s.hasLongPoll() {
			w.readDespiteLongPoll(sc, s)
		} else {
			w.readSoon(sc, s)
		}
		reads++
	}
	level.Debug(sc.logger).Log("msg", "Verified the catalog", "index", d.index, "took", now.Sub(db.verify.started), "reads", reads)
	db.verify.finish(now, d.index, nil)
	db.coverRings(d.index) // the dump shows what a summary would
	w.w.metrics.verifications.Inc()
}
