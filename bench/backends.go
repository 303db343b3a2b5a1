package bench

// BackendRow is one operation of the data backends measured on bbolt and
// on PostgreSQL in the same run: the Go benchmarks of upload
// (BenchmarkIssue*/{bbolt,postgres}) and offline/pgqueue
// (BenchmarkQueue/{bbolt,postgres}/...), each with the CPU it cost
// mediaslot and, on PostgreSQL, the database server (all its processes).
type BackendRow struct {
	Op    string // what was measured
	Bench string // the benchmark, without the backend
	Unit  string // of the rates: slots or stanzas
	// Rates are operations per second; CPU is µs per operation,
	// mediaslot's (bbolt's work included) and the server's.
	BoltRate, PGRate          float64
	BoltCPU, PGCPU, ServerCPU float64
}

// Measured reports whether both backends ran.
func (r BackendRow) Measured() bool { return r.BoltRate > 0 && r.PGRate > 0 }

// RateRatio is PostgreSQL's rate over bbolt's.
func (r BackendRow) RateRatio() string { return ratioCell(ratio(r.PGRate, r.BoltRate)) }

// CPURatio is the CPU an operation costs on PostgreSQL, mediaslot's and
// the server's together, over what it costs on bbolt: the machines an
// operation keeps busy, whichever they are.
func (r BackendRow) CPURatio() string { return ratioCell(ratio(r.PGCPU+r.ServerCPU, r.BoltCPU)) }

// backendBench names the benchmarks of one operation and their units.
type backendBench struct {
	op, bench, unit      string
	bolt, pg             string // full names as GoBench keys them
	rate, cpu, serverCPU string // units
}

var backendBenches = []backendBench{
	{"slot issue, one at a time", "upload.BenchmarkIssue", "slots",
		"upload.BenchmarkIssue/bbolt", "upload.BenchmarkIssue/postgres", "slots/s", "cpu-µs/slot", "db-cpu-µs/slot"},
	{"slot issue, 16 in flight", "upload.BenchmarkIssueParallel", "slots",
		"upload.BenchmarkIssueParallel/bbolt", "upload.BenchmarkIssueParallel/postgres", "slots/s", "cpu-µs/slot", "db-cpu-µs/slot"},
	{"relay enqueue, 128 writers", "offline/pgqueue.BenchmarkQueue …/enqueue", "stanzas",
		"offline/pgqueue.BenchmarkQueue/bbolt/enqueue", "offline/pgqueue.BenchmarkQueue/postgres/enqueue", "stanzas/s", "client-cpu-µs/op", "server-cpu-µs/op"},
	{"relay drain, one recipient", "offline/pgqueue.BenchmarkQueue …/drain", "stanzas",
		"offline/pgqueue.BenchmarkQueue/bbolt/drain", "offline/pgqueue.BenchmarkQueue/postgres/drain", "stanzas/s", "client-cpu-µs/op", "server-cpu-µs/op"},
}

// Backends returns the data backends' operations side by side.
func (r *Report) Backends() []BackendRow {
	rows := make([]BackendRow, len(backendBenches))
	for i, b := range backendBenches {
		rows[i] = BackendRow{
			Op: b.op, Bench: b.bench, Unit: b.unit,
			BoltRate: r.Go.Get(b.bolt, b.rate), PGRate: r.Go.Get(b.pg, b.rate),
			BoltCPU: r.Go.Get(b.bolt, b.cpu), PGCPU: r.Go.Get(b.pg, b.cpu), ServerCPU: r.Go.Get(b.pg, b.serverCPU),
		}
	}
	return rows
}
