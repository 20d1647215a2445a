package consul

import (
	"time"

	"github.com/custom-sd/custom-sd/internal/backoff"
)

// Verification pacing. In doorbell mode a ring of the service list is
// resolved through the catalog summary, which cannot show every change:
// not a rewrite that keeps a service's instance count, nodes and union of
// tags (a port, an address, meta, a tag dropped by one instance that
// another still has), nor a write whose ring the doorbell missed because
// another came right after it. So every ring is followed, within seconds,
// by a verification (verify.go): one read of the catalog, compared with
// every service without a long poll.
//
// A ring is explained when a read of a service answered with the ring's
// own index: the write that rang is one the watcher holds (a register the
// summary showed, a rewrite a long poll saw). Only a ring no read explains
// can stand for a change that nothing has shown yet, so only such a ring
// asks for a verification as soon as the catalog is quiet; explained rings
// are verified as sustained churn allows (below), in case the same write,
// or one whose ring another hid, changed a service no read showed.
//
// The verify pacer decides when one runs:
//
//   - When the catalog goes quiet after a ring no read explains: no ring
//     for verifyQuiet, and no two in the last window, the time the last
//     verification took but at most verifyWindowMax. A short pause in
//     sustained churn is then not taken for its end.
//   - When the catalog goes quiet while a verification runs that began
//     before the last unexplained ring, that one cannot show the last
//     write: it is abandoned and a new one starts at once, instead of
//     after it. Its time counts in the debt, and a verification is
//     restarted at most once, so that rings spaced just over the quiet
//     time cannot keep one from ever finishing.
//   - During sustained churn, and for rings that are all explained,
//     whenever the debt is paid: each verification adds verifyDebtFactor
//     times its duration to a debt that drains in real time, so that
//     verifying takes at most 1/(1+verifyDebtFactor) of the time, a fifth.
//   - The one for a quiet catalog waits for the debt only down to one
//     verification's share, and at most half the time the last
//     verification took after it ended; a verification's time counts the
//     attempt it replaced. So the debt a verification during churn left
//     (with the one it abandoned) does not hold up the one that ends it,
//     and the debt that quiet periods close together leave holds it up at
//     most that long.
//   - After a failed verification, the next waits for a jittered backoff.
//
// So once the catalog is quiet after a ring no read explains, the file is
// right within verifyWindowMax, at most half a verification's time of
// waiting, one verification and the reads it asks for; after explained
// rings, within the debt of the verifications before (at most four times
// the last one's time) and one more. The share of time spent verifying is
// a fifth under sustained churn and where every ring is explained; where
// quiet periods after unexplained rings keep following each other, each
// verification is followed by at least half its time without one, so the
// share is at most two thirds.
const (
	// verifyQuiet is how long without a ring makes the catalog quiet. A
	// ring of another write comes at once (a doorbell polls again at most
	// 10 ms after a ring).
	verifyQuiet = 250 * time.Millisecond
	// verifyWindowMax bounds the window of two rings that tells churn from
	// its end, so that at 10,000 services, where a verification takes
	// seconds, the end of churn is verified a second after it.
	verifyWindowMax = time.Second
	// verifyDebtFactor makes verifying take at most a fifth of the time.
	verifyDebtFactor = 4
	// verifyReadsKept bounds the indexes of reads kept for rings yet to
	// come (health changes answer reads without a ring).
	verifyReadsKept = 4096
)

// verifyPacer decides when one scope's verifications run. It holds no
// timer: its methods take the time, and due says when the next is.
type verifyPacer struct {
	factor float64       // debt per second of verifying
	quiet  time.Duration // see verifyQuiet

	pending  uint64          // the highest ring index no verification covers yet; 0 when none
	first    time.Time       // when the first of those rings came
	open     map[uint64]bool // of those, the ones no read has explained
	read     map[uint64]bool // indexes reads answered with, above covered, for rings yet to come
	covered  uint64          // rings up to this index are covered
	lastRing time.Time       // the last ring, whatever its index
	prevRing time.Time       // the one before

	running   bool
	restarted bool // the running verification replaced an abandoned one
	started   time.Time
	runFirst  time.Time     // the first ring since the running verification started
	runFrom   uint64        // the last ring before it started: it sees every write up to that one
	abandoned time.Duration // how long the attempt the running one replaced ran
	took      time.Duration // how long the last verification took, with the attempt it replaced

	debt   time.Duration
	debtAt time.Time // when debt was last settled

	retry   backoff.Backoff
	retryAt time.Time // no verification before this, after a failure
}

func newVerifyPacer() verifyPacer {
	return verifyPacer{factor: verifyDebtFactor, quiet: verifyQuiet, retry: backoff.Backoff{Min: minBackoff, Max: maxBackoff}}
}

// ring notes a ring of the service list at index.
func (p *verifyPacer) ring(now time.Time, index uint64) {
	p.prevRing, p.lastRing = p.lastRing, now
	if index <= p.covered {
		return
	}
	if !p.read[index] {
		if p.open == nil {
			p.open = map[uint64]bool{}
		}
		p.open[index] = true
	}
	for i := range p.read {
		if i <= index {
			delete(p.read, i) // rings come in order: no later one has this index
		}
	}
	if p.running && p.runFirst.IsZero() {
		p.runFirst = now
	}
	if p.pending == 0 {
		p.first = now
	}
	p.pending = max(p.pending, index)
}

// explain notes that a read of a service answered with index: a ring at
// index, come or to come, is explained.
func (p *verifyPacer) explain(index uint64) {
	if index <= p.covered {
		return
	}
	delete(p.open, index)
	if p.read == nil || len(p.read) >= verifyReadsKept {
		p.read = map[uint64]bool{} // forgetting only makes a ring look unexplained
	}
	p.read[index] = true
}

// cover notes that the catalog was seen whole after every write up to
// index (a sweep started), so that no verification is owed for them.
func (p *verifyPacer) cover(index uint64) {
	p.covered = max(p.covered, index)
	if p.pending <= p.covered {
		p.pending = 0
	}
	for _, m := range []map[uint64]bool{p.open, p.read} {
		for i := range m {
			if i <= p.covered {
				delete(m, i)
			}
		}
	}
}

// due returns when the next verification should start (if one runs: when
// it should be abandoned for a new one), or zero if none is owed.
func (p *verifyPacer) due() time.Time {
	if p.pending == 0 {
		return time.Time{}
	}
	window := max(p.quiet, min(p.took, verifyWindowMax))
	quietAt := latest(p.lastRing.Add(p.quiet), p.prevRing.Add(window))
	if p.running {
		if p.runFirst.IsZero() || p.restarted || p.explainedAbove(p.runFrom) {
			return time.Time{}
		}
		return quietAt
	}
	paidAt := p.debtAt.Add(p.debt)
	sustained := latest(p.first.Add(p.quiet), paidAt)
	if !p.unexplained() {
		return latest(sustained, p.retryAt)
	}
	creditAt := p.debtAt.Add(min(p.debt-time.Duration(p.factor*float64(p.took)), p.took/2))
	end := latest(quietAt, creditAt)
	if sustained.Before(end) {
		end = sustained
	}
	return latest(end, p.retryAt)
}

// unexplained reports whether a ring no read explains waits for a
// verification, or for the one that runs to end.
func (p *verifyPacer) unexplained() bool { return len(p.open) > 0 }

// explainedAbove reports whether every ring above index that no
// verification covers is explained.
func (p *verifyPacer) explainedAbove(index uint64) bool {
	for i := range p.open {
		if i > index {
			return false
		}
	}
	return true
}

// start notes that a verification starts at now; if one runs, it is
// abandoned and its time until now counts in the debt.
func (p *verifyPacer) start(now time.Time) {
	p.abandoned = 0
	if p.running {
		p.settle(now)
		p.abandoned = now.Sub(p.started)
		p.debt += time.Duration(p.factor * float64(p.abandoned))
		p.restarted = true
	}
	p.running, p.started, p.runFirst, p.runFrom = true, now, time.Time{}, p.pending
}

// settle drains the debt until now.
func (p *verifyPacer) settle(now time.Time) {
	if !p.debtAt.IsZero() {
		p.debt = max(p.debt-now.Sub(p.debtAt), 0)
	}
	p.debtAt = now
}

// finish notes that the running verification ended at now. It saw every
// write up to index; err says it failed.
func (p *verifyPacer) finish(now time.Time, index uint64, err error) {
	p.running, p.restarted = false, false
	ran := now.Sub(p.started)
	p.took = ran + p.abandoned
	p.settle(now)
	p.debt += time.Duration(p.factor * float64(ran))
	if err != nil {
		if isTooManyRequests(err) {
			p.retryAt = now.Add(p.retry.NextAtLeast(minBackoffLimited))
		} else {
			p.retryAt = now.Add(p.retry.Next())
		}
		return
	}
	p.retry.Reset()
	p.retryAt = time.Time{}
	p.cover(index)
	if p.pending != 0 {
		// Rings above index came after the catalog was read: they came
		// while the verification ran.
		p.first = p.runFirst
		if p.first.IsZero() {
			p.first = now
		}
	}
}

// latest returns the later of two times.
func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
