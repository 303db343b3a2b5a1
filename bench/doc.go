// Package bench measures mediaslot: the load generator and statistics of
// `mediaslot bench` (slot latency and throughput over XMPP, PUT and GET
// throughput over HTTP, against mediaslot and a baseline service in
// alternating rounds), a bare Go HTTP handler that marks the physical limit
// of the disk store, readers of a server process's CPU time and memory in
// /proc, the end-to-end relay flush, and the report behind
// docs/BENCHMARKS.md. Nothing here is a test: speed never fails a build.
package bench
