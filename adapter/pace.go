package adapter

import "time"

// Pacing by cost. A change after a quiet period is handed to the outputs at
// once, and so is each of a series of changes that each wait for the
// previous write (a deploy that checks every step): they cost one write
// each. A burst shows as changes arriving while a write is under way; then
// the least time between hand-outs grows, from firstGap (250 ms) by a factor of
// gapGrowth per hand-out, up to a cap: the larger of the configured
// interval and costFactor times the cost of the last write, where the cost
// is the write's own duration plus an estimate of the time a reader
// (Prometheus) takes to parse the file again. So during sustained change a
// large file is rewritten at most every ten times its cost, which bounds the
// work of every reader of the file to about a tenth of its time, while a
// small one keeps to the interval. The burst is over when a change comes
// after half a gap in which nothing changed or was written (it goes out at
// once, with whatever was pending), or when a paced hand-out carried a
// single change and none came during its write: changes that each follow
// the previous write go out at once again. Half a gap lets the change that
// ends a busy period (the last reads after the catalog went quiet) out
// without waiting for the rest of the gap, while changes that keep coming
// at least that often stay paced; at worst, changes just over half a gap
// apart, the reader works a fifth of its time.
//
// A discoverer that knows a busy period has ended says so (Settled): a
// change that comes with that word goes out at once, even within half a gap,
// but at most once per gap, so that with the paced hand-outs a reader still
// parses the file at most twice per gap, a fifth of its time.
const (
	firstGap   = 250 * time.Millisecond
	gapGrowth  = 4
	costFactor = 10
	// readerBytesPerSecond is how fast a reader is assumed to parse the file
	// (Prometheus's file_sd reads JSON at about this rate on a slow core).
	readerBytesPerSecond = 50 << 20
)

// pacer decides when the manager hands a changed set to the outputs. It
// holds no timer: its methods take the time.
type pacer struct {
	interval time.Duration // the cap for a cheap write
	last     time.Time     // when the last hand-out ended; zero before the first
	gap      time.Duration // the least time between hand-outs now; 0 outside bursts
	cost     time.Duration // of the last write, reader included
	changes  int           // changes noted since the last hand-out began; 0: nothing pending
	change   time.Time     // when the last change was noted; zero before the first
	settled  bool          // a pending change came with the discoverer's word that it is settled
	early    time.Time     // when the last hand-out let out early for that word began
}

// changed notes a change at now; settled says it came with the
// discoverer's word that a busy period has ended (Settled).
func (p *pacer) changed(now time.Time, settled bool) {
	if p.gap > 0 && now.Sub(later(p.change, p.last)) >= p.gap/2 {
		p.gap = 0 // no change or write for half a gap: the burst is over
	}
	p.changes++
	p.change = now
	p.settled = p.settled || settled
}

// settle notes the discoverer's word that a busy period has ended, in a send
// that changed nothing: it is not a change, and lets pending changes out
// early.
func (p *pacer) settle() {
	if p.changes > 0 {
		p.settled = true
	}
}

// due reports whether a hand-out is due at now.
func (p *pacer) due(now time.Time) bool {
	return p.changes > 0 && (p.gap == 0 || p.last.IsZero() || !now.Before(p.dueAt()))
}

// next returns when a hand-out will be due, or zero if nothing changed.
func (p *pacer) next() time.Time {
	if p.changes == 0 {
		return time.Time{}
	}
	return p.dueAt()
}

// dueAt returns when the pending changes may go out: a gap after the last
// hand-out, or, for a settled discoverer, a gap after the last early one.
func (p *pacer) dueAt() time.Time {
	at := p.last.Add(p.gap)
	if p.gap > 0 && p.settled && p.early.Add(p.gap).Before(at) {
		at = p.early.Add(p.gap)
	}
	return at
}

// handedOut notes a hand-out that began at start and ended at end, writing
// size bytes; changesMeanwhile tells whether a change arrived while it was
// under way, before its new content was in place. (The change itself is
// noted by changed, once received.) It reports whether the hand-out went
// out early, within the gap, because the discoverer had settled.
func (p *pacer) handedOut(start, end time.Time, size int, changesMeanwhile bool) (early bool) {
	if p.gap > 0 && !p.last.IsZero() && start.Before(p.last.Add(p.gap)) {
		p.early, early = start, true // let out before the gap: the discoverer had settled
	}
	p.settled = false
	p.last = end
	p.cost = end.Sub(start) + time.Duration(float64(size)/readerBytesPerSecond*float64(time.Second))
	// A burst begins with a change during a write, and goes on while
	// several changes come within a gap of the last hand-out (changed ends
	// it after a quiet gap): each hand-out in it widens the gap.
	switch {
	case p.gap > 0 && p.changes <= 1 && !changesMeanwhile:
		p.gap = 0 // one change in a whole gap, and none since: not a burst
	case p.gap > 0 || changesMeanwhile:
		p.gap = min(max(p.gap*gapGrowth, firstGap), p.limit())
	}
	p.changes = 0
	return early
}

// limit is the largest gap: the interval, or ten times the cost.
func (p *pacer) limit() time.Duration {
	return max(p.interval, costFactor*p.cost)
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
