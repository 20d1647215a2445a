package consul

// Settling. In doorbell mode a write to the services table is found in
// steps: the ring of the service list, the catalog summary and the reads it
// asks for, then the verification and the reads it asks for. The adapter
// paces its writes during a busy period (adapter/pace.go), so the last of
// those reads could wait for the rest of a pacing gap: seconds at 10,000
// services, after the verification's seconds. Once a scope whose service
// list rang has nothing left under way that could change a target (no
// verification owed or running for a ring no read explains, no summary or
// sweep owed or running, no read queued or being read), every job with a
// view of it sends adapter.Settled, and the adapter writes what it holds
// at once (at most once per pacing gap). The verification that explained
// rings get as the debt allows (verifypacer.go) is not waited for: it
// finds nothing unless a write changed a service no read showed.

// busy reports whether a ring of sc's service list may still change a
// target: a verification for a ring no read explains, a summary or a
// sweep is owed or runs, or a read waits or is under way.
func (db *doorbells) busy() bool {
	return db.verify.unexplained() ||
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
