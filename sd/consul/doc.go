// Package consul discovers Prometheus targets in Consul's catalog.
//
// A Watch follows one agent with blocking queries, within a budget of
// connections, for any number of jobs; each Job is an adapter.Discoverer
// that sends one target group per service with the labels Prometheus's
// consul_sd_configs would give each instance. Jobs whose queries are equal
// share a scope, in which every service is read once (see Watch). A
// Discoverer is one job with a watch of its own.
//
// # The path of a change
//
//	Consul answers a blocking query     poll.go      (a long poll's goroutine)
//	  → the watcher stores the read     watcher.go   (the watcher's goroutine)
//	  → each view makes its job's group job.go       (same goroutine; into the job's mailbox)
//	  → Job.Run sends it to the adapter job.go       (the job's goroutine)
//
// # Goroutines
//
//   - The watcher (watcher.go) owns all state: the scopes, their services,
//     which services have a long poll, doorbell mode, the jobs' views.
//     Everything else reports to it on channels; it never waits for an
//     adapter.
//   - One per blocking query: each scope's service lists, each service with
//     a long poll of its own, and in doorbell mode the two other doorbells
//     (poll.go). They block on Consul, which is why they are goroutines.
//   - In doorbell mode, a few readers per scope make one-off reads and
//     probes from a queue (reader.go, readqueue.go), one goroutine reads
//     the catalog summary when one is due (summary.go), and one the node
//     dump when a verification is (verify.go).
//   - When a job watches every datacenter, one follows their list
//     (datacenters.go).
//   - Each Job.Run forwards its job's mailbox to the adapter, so that a slow
//     write never holds up the watcher.
//
// # Watching modes
//
// While a scope's services fit its share of the connection budget, each
// has a long poll of its own. When they do not, the scope is in doorbell
// mode (doorbells.go): long polls for the services that changed most
// recently, and doorbells for the rest. A change of health or of a node is
// resolved exactly from its doorbell's list; a change of the service list
// through the catalog summary at once, and within seconds by a
// verification against Consul's node dump, which finds what the summary
// cannot show (verify.go). Once the catalog is quiet, every service is
// right within a quarter of a second, one verification and the reads it
// asks for. The decisions are values that take the time and are tested on
// their own: the verify pacer (verifypacer.go), the sweep pacer
// (sweeppacer.go), the long-poll allocator (allocator.go), the health and
// node diffs (healthdiff.go, nodediff.go), the read queue (readqueue.go)
// and the connection budget (budget.go).
package consul
