package consul

// Settling. In doorbell mode a write to the services table is found in
// steps: the ring of the service list, the catalog summary and the reads it
// asks for, then the verification and the reads it asks for. The adapter
// paces its writes during a busy period (adapter/pace.go), so the last of
// those reads could wait for the rest of a pacing gap: seconds at 10,000
// services, after the verification's seconds. Once a scope whose service
// list rang has nothing left under way that could change a target (no
// verification, summary or sweep owed or running, no read queued or being
// read), every job with a view of it sends
// adapter.Settled, and the adapter writes what it holds at once (at most
// once per pacing gap).

// busy reports whether a ring of sc's service list may still change a
// target: a verification, a summary or a sweep is owed or runs, or a read
// waits or is under way.
func (db *doorbells) busy() bool {
	return db.verify.pending != 0 || db.verify.running ||
		db.summary.owed() || len(db.rings) > 0 ||
		db.pacer.owed() || !db.queue.idle()
}

// checkSettled tells the jobs with a view of sc that it has settled, once
// after each ring of its service list, when nothing it asked for is left.
func (w *watcher) checkSettled(sc *scope) {
	db := sc.doorbells
	if db == nil || !db.unsettled || db.busy() {
		return
	}
	db.unsettled = false
	for _, v := range sc.views {
		v.job.mailbox.settle()
	}
}
