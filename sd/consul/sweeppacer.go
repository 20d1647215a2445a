package consul

import (
	"time"

	"github.com/custom-sd/custom-sd/internal/backoff"
)

// Sweep pacing. A sweep probes every service without a long poll; it is
// how a datacenter in doorbell mode learns which service a catalog change
// touched when it has no catalog summary, or no node dump to verify one
// with (verify.go), and how failed reads are retried. The pacer decides
// when sweeps run:
//
//   - A ring at or below the index a sweep already covers starts nothing:
//     a sweep started after a doorbell's index was seen covers every write
//     up to that index. A ring while a sweep runs asks for one more sweep
//     after it.
//   - Over time probing takes at most 1/(1+factor) of the time: each sweep
//     adds factor times its duration, scaled by the share of probes in it
//     (first reads of services are owed in any mode), to a debt that drains
//     in real time, and a sweep waits while the debt is above
//     sweepAllowance. The factor is sweepDebtFactor when every catalog
//     change needs a sweep (no summary, or no node dump to verify the
//     summary with), and rewriteDebtFactor otherwise: then sweeps only
//     retry failed reads and catch up after the watching mode changed.
//   - After a sweep with failed reads (or a failed read between sweeps),
//     the next sweep waits for a jittered exponential backoff, so that the
//     failed services are read again without hammering a struggling agent.
//
// The same pacer, with its own factor and allowance, paces the reads of the
// catalog summary (summary.go), which are catalog-wide too.
const (
	// sweepAllowance is how much sweep debt still lets a sweep start at once.
	sweepAllowance = time.Second
	// sweepDebtFactor makes sweeping take at most a fifth of the time
	// when every catalog change needs a sweep.
	sweepDebtFactor = 4
	// rewriteDebtFactor makes sweeping take at most half the time when the
	// summary and the verifications find catalog changes.
	rewriteDebtFactor = 1
)

// sweepPacer decides when one scope's catalog-wide reads of one kind (probe
// sweeps, or summary reads) run. It holds no timer: its methods take the
// time, and when a read must wait, due says until when.
type sweepPacer struct {
	factor    float64       // debt per second of reading
	allowance time.Duration // debt that still lets a read start at once

	covered uint64 // rings up to this index are covered by a sweep
	pending uint64 // the highest ring index seen

	running bool      // a sweep is running
	again   bool      // something rang while it ran
	started time.Time // when the running sweep started
	size    int       // reads in the running sweep
	probes  int       // of which probes

	debt   time.Duration // see the comment at the top
	debtAt time.Time     // when debt was last settled

	failed  int   // reads that failed since the last sweep began
	err     error // the last of them
	retry   backoff.Backoff
	retryAt time.Time // no sweep before this, after failures

	due time.Time // a sweep waits until then; zero when none waits
}

func newSweepPacer() sweepPacer {
	return sweepPacer{factor: sweepDebtFactor, allowance: sweepAllowance, retry: backoff.Backoff{Min: minBackoff, Max: maxBackoff}}
}

// request notes a ring at index (0 for a retry or a follow-up) and reports
// whether a sweep should start now. Otherwise a sweep may be due later.
func (p *sweepPacer) request(now time.Time, index uint64) bool {
	if index != 0 && index <= p.covered {
		return false
	}
	p.pending = max(p.pending, index)
	switch {
	case p.running:
		p.again = true
		return false
	case !p.due.IsZero():
		return false // the sweep that waits will cover this ring
	}
	if wait := p.wait(now); wait > 0 {
		p.due = now.Add(wait)
		return false
	}
	return true
}

// fire reports whether the waiting sweep is due at now.
func (p *sweepPacer) fire(now time.Time) bool {
	if p.due.IsZero() || now.Before(p.due) {
		return false
	}
	p.due = time.Time{}
	return true
}

// cancel drops the read that waits or is asked for after the running one:
// nothing needs it any more.
func (p *sweepPacer) cancel() {
	p.again, p.due = false, time.Time{}
}

// owed reports whether a read runs, or one is asked for or waits.
func (p *sweepPacer) owed() bool { return p.running || p.again || !p.due.IsZero() }

// next returns when fire may next say yes, or zero.
func (p *sweepPacer) next() time.Time { return p.due }

// start notes that a sweep of size reads, probes of them probes, starts at
// now.
func (p *sweepPacer) start(now time.Time, size, probes int) {
	p.covered = max(p.covered, p.pending)
	p.running, p.again = true, false
	p.failed, p.err = 0, nil
	p.started, p.size, p.probes = now, size, probes
	p.due = time.Time{}
}

// readFailed notes a failed read at now. Outside a sweep it schedules a
// retry, and reports whether that sweep should start now.
func (p *sweepPacer) readFailed(now time.Time, err error) bool {
	p.failed++
	p.err = err
	if p.running {
		return false
	}
	return p.scheduleRetry(now)
}

// finish notes that the running sweep ended at now, and reports whether
// another should start at once.
func (p *sweepPacer) finish(now time.Time) bool {
	p.running = false
	took := now.Sub(p.started)
	p.wait(now) // settle the debt up to now
	// Only probing runs up debt: first reads are owed whatever the mode (at
	// start, all of a 10,000-service catalog), and charging them would hold
	// the first sweep back by four times the start-up.
	p.debt += time.Duration(p.factor * float64(took) * float64(p.probes) / float64(max(p.size, 1)))
	if p.failed > 0 {
		return p.scheduleRetry(now)
	}
	p.retry.Reset()
	p.retryAt = time.Time{}
	if p.again {
		return p.request(now, 0)
	}
	return false
}

// scheduleRetry makes the next sweep wait for the retry backoff.
func (p *sweepPacer) scheduleRetry(now time.Time) bool {
	if isTooManyRequests(p.err) {
		p.retryAt = now.Add(p.retry.NextAtLeast(minBackoffLimited))
	} else {
		p.retryAt = now.Add(p.retry.Next())
	}
	p.failed = 0
	p.due = time.Time{}
	return p.request(now, 0)
}

// wait returns how long a sweep must wait at now.
func (p *sweepPacer) wait(now time.Time) time.Duration {
	if !p.debtAt.IsZero() {
		p.debt = max(p.debt-now.Sub(p.debtAt), 0)
	}
	p.debtAt = now
	return max(p.debt-p.allowance, p.retryAt.Sub(now), 0)
}
