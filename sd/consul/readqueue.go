package consul

import (
	"context"
	"sync"
)

// readJob asks a reader to read one service.
type readJob struct {
	name  string
	gen   uint64
	sweep bool // part of a sweep
	probe bool // read only the index
	// outOfDate: a verification found the service's last read out of
	// date while it has a long poll, which should have shown the change;
	// the read's answer wins a tie with the long poll's.
	outOfDate bool
}

// readQueue hands read jobs to a datacenter's readers: urgent reads (a
// health change, a probe whose index moved, a service that lost its long
// poll) before sweep reads, and an urgent read of a service at most once
// while it waits. It is shared by the watcher, which pushes, and the
// readers, which pop.
type readQueue struct {
	mu           sync.Mutex
	urgent       []readJob
	queued       map[string]struct{} // names in urgent
	sweep        []readJob
	active       int // jobs handed to readers whose answer the watcher has not taken
	urgentActive int // of those, the urgent ones
	wake         chan struct{}
}

func newReadQueue() *readQueue {
	return &readQueue{queued: map[string]struct{}{}, wake: make(chan struct{}, 1)}
}

// push queues j. An urgent read of a service whose urgent read already
// waits is not queued twice: the waiting one serves both, for the newer
// appearance of the service if they differ (it left and came back).
func (q *readQueue) push(j readJob) {
	q.mu.Lock()
	switch _, dup := q.queued[j.name]; {
	case j.sweep:
		q.sweep = append(q.sweep, j)
	case !dup:
		q.queued[j.name] = struct{}{}
		q.urgent = append(q.urgent, j)
	default:
		for i := range q.urgent {
			if q.urgent[i].name == j.name {
				q.urgent[i].gen = max(q.urgent[i].gen, j.gen)
				q.urgent[i].outOfDate = q.urgent[i].outOfDate || j.outOfDate
			}
		}
	}
	q.mu.Unlock()
	q.signal()
}

// taken notes that the watcher took the answer of a job handed out.
func (q *readQueue) taken(sweep bool) {
	q.mu.Lock()
	q.active--
	if !sweep {
		q.urgentActive--
	}
	q.mu.Unlock()
}

// idle reports whether no job waits and every job handed out has been
// answered.
func (q *readQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.urgent)+len(q.sweep)+q.active == 0
}

// urgentIdle reports whether no urgent job waits and every urgent job
// handed out has been answered.
func (q *readQueue) urgentIdle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.urgent)+q.urgentActive == 0
}

// waiting reports whether an urgent read of name waits.
func (q *readQueue) waiting(name string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.queued[name]
	return ok
}

func (q *readQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next returns the next job, if any.
func (q *readQueue) next() (j readJob, ok, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case len(q.urgent) > 0:
		j, q.urgent = q.urgent[0], q.urgent[1:]
		delete(q.queued, j.name)
		ok = true
	case len(q.sweep) > 0:
		j, q.sweep = q.sweep[0], q.sweep[1:]
		ok = true
	}
	if ok {
		q.active++
		if !j.sweep {
			q.urgentActive++
		}
	}
	return j, ok, len(q.urgent)+len(q.sweep) > 0
}

// pop waits for a job; it reports false once ctx is cancelled.
func (q *readQueue) pop(ctx context.Context) (readJob, bool) {
	for {
		if j, ok, more := q.next(); ok {
			if more {
				q.signal() // wake another reader for the rest
			}
			return j, true
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return readJob{}, false
		}
	}
}
