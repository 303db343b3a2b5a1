package upload

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mediaslot/internal/dbfile/dbfiletest"
	"mediaslot/internal/pgdb/pgdbtest"
	"mediaslot/store"
	"mediaslot/store/disk"
	"mediaslot/store/s3"
	"mediaslot/testserver"
	"mediaslot/upload/slotstore"
	"mediaslot/upload/slotstore/boltslots"
	"mediaslot/upload/slotstore/pgslots"
)

// Benchmarks of the slot and HTTP hot paths. They measure, they never fail
// on speed; scripts/bench.sh runs them and docs/BENCHMARKS.md reports them.

// benchFileSize is the size of the PUT and GET benchmarks.
const benchFileSize = 64 << 20

// newBenchService is a Service on a fresh bbolt file opened as `mediaslot
// serve` opens it, behind a group-commit Writer, with the real clock.
func newBenchService(b *testing.B, st store.Store) *Service {
	b.Helper()
	_, direct := st.(store.Presigner)
	return newBenchServiceOn(b, benchBolt(b, direct), st)
}

// benchBolt is a slot store on a fresh bbolt file opened as `mediaslot
// serve` opens it, behind a group-commit Writer.
func benchBolt(b *testing.B, direct bool) slotstore.Store {
	db, w := dbfiletest.New(b)
	rs, err := boltslots.Open(db, w, boltslots.Options{Direct: direct})
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// newBenchServiceOn is a Service with slot records in rs, with the real
// clock.
func newBenchServiceOn(b *testing.B, rs slotstore.Store, st store.Store) *Service {
	b.Helper()
	var err error
	if st == nil {
		if st, err = disk.New(filepath.Join(b.TempDir(), "files")); err != nil {
			b.Fatal(err)
		}
	}
	svc, err := New(Options{
		Policy:    Policy{MaxFileSize: 1 << 30, SlotLifetime: 5 * time.Minute, AllowedDomains: []string{"example.net"}},
		Records:   rs,
		Store:     st,
		Key:       []byte("0123456789abcdef0123456789abcdef"),
		PublicURL: "https://upload.example.net",
	})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

// benchRequest is a typical request from a phone: a photo.
var benchRequest = Request{Owner: "alice@example.net", Domain: "example.net", Filename: "IMG_20261125_080000.jpg", Size: 2_345_678, ContentType: "image/jpeg"}

// reportRate waits for the slot records still lingering in the Writer,
// then adds slots/s and the process's CPU time per slot (all goroutines:
// handler, group commit, GC) to a benchmark's results, and the database
// server's, if it has one.
func reportRate(b *testing.B, svc *Service, cpu0 time.Duration, db dbCPU, db0 time.Duration) {
	// a sweep's listing returns once every record issued before is in
	if _, err := svc.opt.Records.DuePending(context.Background(), time.Time{}, 1); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "slots/s")
	b.ReportMetric(float64(testserver.SelfCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/slot")
	if d := db() - db0; d > 0 {
		b.ReportMetric(float64(d)/float64(time.Microsecond)/float64(b.N), "db-cpu-µs/slot")
	}
}

// BenchmarkIssue issues slots one after another, with the default quotas
// (daily and per user) checked, owners taking turns: policy, token, and
// the record with its quota check in the slot store. bbolt: the check
// against memory and a read snapshot, the record handed to the group-commit
// Writer, which commits (fsyncs) it in the background; its ns/op is the
// latency a lone client sees inside mediaslot, and cpu-µs/slot includes
// the commits. postgres: one round trip that checks, inserts and commits
// (synchronous_commit, fsync on), on a private server; db-cpu-µs/slot is
// the server's CPU (all its processes) per slot.
func BenchmarkIssue(b *testing.B) {
	forEachBenchRecords(b, func(b *testing.B, rs slotstore.Store, db dbCPU) {
		svc := newBenchServiceOn(b, rs, nil)
		svc.opt.Quota = defaultQuotas
		ctx := context.Background()
		cpu0, db0 := testserver.SelfCPU(b), db()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := svc.Issue(ctx, benchOwner(i)); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, svc, cpu0, db, db0)
	})
}

// BenchmarkIssueParallel issues slots from 16 goroutines (8 per CPU on the
// two-core reference machine), as 16 requests in flight do: they share
// commits (bbolt), or 16 connections (postgres).
func BenchmarkIssueParallel(b *testing.B) {
	forEachBenchRecords(b, func(b *testing.B, rs slotstore.Store, db dbCPU) {
		svc := newBenchServiceOn(b, rs, nil)
		svc.opt.Quota = defaultQuotas
		issueParallel(b, svc, db)
	})
}

// defaultQuotas are config.Default's kinds, a daily and a user quota, high
// enough that no run reaches them (a 3 s run issues over 400,000 slots on
// bbolt, more than config.Default's 1 GiB a day allows 1000 users): each
// is checked as with the defaults.
var defaultQuotas = Quota{DailyBytes: 1 << 40, UserBytes: 10 << 40}

// dbCPU returns the CPU time the database server has used so far (zero
// for bbolt, whose work is the process's own).
type dbCPU func() time.Duration

// forEachBenchRecords runs bench with slot records in a fresh bbolt file
// and in a fresh database of a private PostgreSQL server (started once).
func forEachBenchRecords(b *testing.B, bench func(b *testing.B, rs slotstore.Store, db dbCPU)) {
	b.Run("bbolt", func(b *testing.B) { bench(b, benchBolt(b, false), func() time.Duration { return 0 }) })
	// Started by the parent: each run of a sub-benchmark (one per b.N
	// tried) ends with its cleanups.
	pg := sync.OnceValue(func() *testserver.Postgres { return testserver.StartPostgres(b) })
	b.Run("postgres", func(b *testing.B) {
		bench(b, pgslots.New(pgdbtest.Open(b, pg().NewDB(b))), func() time.Duration { return pg().CPU(b) })
	})
}

// benchOwner is benchRequest from the i-th of 1000 accounts that take
// turns, as many users do.
func benchOwner(i int) Request {
	r := benchRequest
	r.Owner = "u" + strconv.Itoa(i%1000) + "@example.net"
	return r
}

func issueParallel(b *testing.B, svc *Service, db dbCPU) {
	ctx := context.Background()
	cpu0, db0 := testserver.SelfCPU(b), db()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.Issue(ctx, benchOwner(int(n.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, svc, cpu0, db, db0)
}

// BenchmarkIssueS3 is BenchmarkIssueParallel with the S3 store: the slot
// carries a presigned PUT URL (SigV4, computed locally; nothing is sent to
// the endpoint). cpu-µs/slot is what mediaslot spends per slot in S3 mode,
// where the data never passes through it.
func BenchmarkIssueS3(b *testing.B) {
	st, err := s3.New(context.Background(), s3.Options{
		Endpoint: "http://127.0.0.1:9", Region: "us-east-1", Bucket: "mediaslot",
		AccessKeyID: "bench", SecretAccessKey: "benchsecretkey123", PathStyle: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	svc := newBenchService(b, st)
	if svc.direct == nil {
		b.Fatal("the S3 store is not a Presigner")
	}
	issueParallel(b, svc, func() time.Duration { return 0 })
}

// BenchmarkTokenVerify checks a PUT URL's token, as every PUT does.
func BenchmarkTokenVerify(b *testing.B) {
	s := newSigner([]byte("0123456789abcdef0123456789abcdef"))
	exp := time.Unix(1_800_000_000, 0)
	id := "0123456789abcdef0123456789abcdef"
	tok := s.token(id, 2_345_678, "image/jpeg", exp)
	b.ReportAllocs()
	for range b.N {
		if !s.verify(tok, id, 2_345_678, "image/jpeg", exp) {
			b.Fatal("token does not verify")
		}
	}
}

// pattern is an endless, allocation-free body.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

// benchHTTP is the Service's handler on a loopback listener, as `mediaslot
// serve` runs it, and a client like the bench command's.
func benchHTTP(b *testing.B) (*Service, *httptest.Server, *http.Client) {
	b.Helper()
	svc := newBenchService(b, nil)
	srv := httptest.NewServer(svc.Handler())
	b.Cleanup(srv.Close)
	return svc, srv, &http.Client{Transport: &http.Transport{WriteBufferSize: 64 << 10, ReadBufferSize: 64 << 10}}
}

func benchPut(b *testing.B, svc *Service, srv *httptest.Server, c *http.Client, size int64) Slot {
	b.Helper()
	r := benchRequest
	r.Size, r.ContentType = size, "video/mp4"
	slot, err := svc.Issue(context.Background(), r)
	if err != nil {
		b.Fatal(err)
	}
	u := srv.URL + slot.PutURL[len(svc.base):]
	req, err := http.NewRequest(http.MethodPut, u, io.LimitReader(pattern{}, size))
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "video/mp4")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("PUT: %s", resp.Status)
	}
	return slot
}

// BenchmarkPut streams 64 MiB PUTs through the HTTP handler into the disk
// store over loopback TCP: token check, temporary file, fsync of file and
// directory, the completion record. Compare with bench's BenchmarkBarePut.
func BenchmarkPut(b *testing.B) {
	svc, srv, c := benchHTTP(b)
	dir := svc.opt.Store.(*disk.Store)
	b.SetBytes(benchFileSize)
	b.ResetTimer()
	for range b.N {
		slot := benchPut(b, svc, srv, c, benchFileSize)
		b.StopTimer()
		if err := dir.Delete(context.Background(), slot.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkGet downloads a 64 MiB file through the handler over loopback
// TCP (http.ServeContent of the *os.File: sendfile).
func BenchmarkGet(b *testing.B) {
	svc, srv, c := benchHTTP(b)
	slot := benchPut(b, svc, srv, c, benchFileSize)
	u := srv.URL + slot.GetURL[len(svc.base):]
	b.SetBytes(benchFileSize)
	b.ResetTimer()
	for range b.N {
		resp, err := c.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != benchFileSize {
			b.Fatalf("GET: %s, %d bytes", resp.Status, n)
		}
	}
}
