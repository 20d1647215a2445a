// Package consul discovers Prometheus targets in Consul's catalog.
//
// A Discoverer watches the service list and every service's instances with
// blocking queries, within a fixed budget of connections to the agent, and
// sends one target group per service with the labels Prometheus's
// consul_sd_configs would give each instance.
//
// # The path of a change
//
//	Consul answers a blocking query     poll.go      (a long poll's goroutine)
//	  → the watcher stores the read     watcher.go   (the watcher's goroutine)
//	  → the job makes the group         job.go       (same goroutine; into its mailbox)
//	  → Run sends it to the adapter     job.go       (Run's goroutine)
//
// # Goroutines
//
//   - The watcher (watcher.go) owns all state: the datacenters, their
//     services, which services have a long poll, doorbell mode. Everything
//     else reports to it on channels; it never waits for the adapter.
//   - One per blocking query: each datacenter's service list, each service
//     with a long poll of its own, and in doorbell mode the two other
//     doorbells (poll.go). They block on Consul, which is why they are
//     goroutines.
//   - In doorbell mode, a few readers per datacenter make one-off reads and
//     probes from a queue (reader.go, readqueue.go).
//   - With AllDatacenters, one follows the list of datacenters
//     (datacenters.go).
//   - Run's own goroutine forwards the job's mailbox to the adapter, so that
//     a slow write never holds up the watcher.
//
// # Watching modes
//
// While a datacenter's services fit its share of the connection budget,
// each has a long poll of its own. When they do not, the datacenter is in
// doorbell mode (doorbells.go): long polls for the services that changed
// most recently, and doorbells and sweeps for the rest. The decisions of
// that mode are values that take the time and are tested on their own: the
// sweep pacer (sweeppacer.go), the long-poll allocator (allocator.go), the
// health diff (healthdiff.go) and the read queue (readqueue.go).
package consul
