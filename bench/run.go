package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
)

// Target is an upload service under test.
type Target struct {
	Name    string // how the report calls it: "mediaslot", "baseline"
	Service jid.JID
}

// Options configure Run.
type Options struct {
	Client  *client.Client // logged in; its account asks for the slots
	Targets []Target       // measured in this order in every round
	// Bare, if set, is the bare handler's base URL (see BareHandler): PUT
	// and GET rounds include it after the targets.
	Bare     string
	N        int   // sequential slot requests per target (latency)
	Burst    int   // slot requests per target with Inflight in flight (throughput)
	Inflight int   // slot requests in flight in the throughput phase
	Size     int64 // PUT/GET file size; 0 skips PUT and GET
	Rounds   int
	Procs    []Proc    // server processes watched during every phase
	Progress io.Writer // one line per phase; nil for none
	// Timeout bounds each slot request; default 10 s. A target that fails
	// once is not measured further in this run: its later numbers would
	// mean nothing.
	Timeout time.Duration
}

// Result is what Run measured. Ratios compare the first target with the
// second (mediaslot/baseline) and with the bare handler.
type Result struct {
	Started  time.Time      `json:"started"`
	Size     int64          `json:"size_bytes"`
	N        int            `json:"n"`
	Burst    int            `json:"burst"`
	Inflight int            `json:"inflight"`
	Rounds   int            `json:"rounds"`
	Targets  []TargetResult `json:"targets"`
	Bare     *HTTPResult    `json:"bare,omitempty"`
}

// TargetResult is one service's measurements.
type TargetResult struct {
	Name        string  `json:"name"`
	Service     string  `json:"service"`
	MaxFileSize int64   `json:"max_file_size"`
	SlotLatency Latency `json:"slot_latency"`
	SlotRate    Rate    `json:"slots_per_s"` // with Inflight requests in flight
	BurstSlots  int     `json:"burst_slots"` // slots issued in the throughput phase
	HTTPResult
	// Procs holds, per watched process, what it spent in each phase of
	// this target (summed over the rounds): latency, throughput, put, get.
	Procs  map[string]map[string]Usage `json:"procs,omitempty"`
	Errors []string                    `json:"errors,omitempty"`
}

// HTTPResult is PUT and GET throughput.
type HTTPResult struct {
	Put     Rate   `json:"put_mb_per_s"`
	Get     Rate   `json:"get_mb_per_s"`
	PutHost string `json:"put_host,omitempty"` // where the PUT URLs point
	GetHost string `json:"get_host,omitempty"`
	// Verified: a download of the last upload matched it byte for byte.
	Verified bool `json:"verified"`
}

// slotFile is what the slot phases ask for: a photo-sized file.
var slotFile = client.File{Name: "bench.jpg", Size: 123_456, ContentType: "image/jpeg"}

const warmup = 20

// Run measures every target (and the bare handler) in alternating rounds.
func Run(ctx context.Context, opt Options) (*Result, error) {
	opt.Rounds = max(opt.Rounds, 1)
	opt.Inflight = max(opt.Inflight, 0)
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	r := &runner{
		opt: opt,
		http: &http.Client{Transport: &http.Transport{
			WriteBufferSize: 64 << 10, ReadBufferSize: 64 << 10,
			MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second, DisableCompression: true,
		}},
		res:   &Result{Started: time.Now().UTC(), Size: opt.Size, N: opt.N, Burst: opt.Burst, Inflight: opt.Inflight, Rounds: opt.Rounds},
		lat:   make([][]time.Duration, len(opt.Targets)),
		rates: make([][]float64, len(opt.Targets)),
		puts:  make([][]float64, len(opt.Targets)+1),
		gets:  make([][]float64, len(opt.Targets)+1),
		last:  make([]string, len(opt.Targets)+1),
	}
	if err := r.prepare(ctx); err != nil {
		return nil, err
	}
	for round := range opt.Rounds {
		r.slotRound(ctx, round)
		if opt.Size > 0 {
			if err := r.httpRound(ctx, round); err != nil {
				return nil, err
			}
		}
	}
	r.summarize(ctx)
	return r.res, nil
}

// runner holds a run's state; the last index of puts, gets and last is the
// bare handler's.
type runner struct {
	opt         Options
	http        *http.Client
	res         *Result
	lat         [][]time.Duration
	rates, puts [][]float64
	gets        [][]float64
	last        []string // GET URL of the last upload
}

// prepare discovers each target, checks the file size against its limit and
// warms it up.
func (r *runner) prepare(ctx context.Context) error {
	for _, t := range r.opt.Targets {
		tr := TargetResult{Name: t.Name, Service: t.Service.String(), Procs: map[string]map[string]Usage{}}
		svc, err := r.opt.Client.Service(ctx, t.Service)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", t.Name, t.Service, err)
		}
		tr.MaxFileSize = svc.MaxFileSize()
		if r.opt.Size > 0 && tr.MaxFileSize > 0 && r.opt.Size > tr.MaxFileSize {
			return fmt.Errorf("%s (%s) accepts files up to %d bytes; --size is %d", t.Name, t.Service, tr.MaxFileSize, r.opt.Size)
		}
		for range warmup {
			if _, err := r.slot(ctx, t.Service, slotFile); err != nil {
				return fmt.Errorf("%s (%s): slot request: %w", t.Name, t.Service, err)
			}
		}
		r.res.Targets = append(r.res.Targets, tr)
	}
	return nil
}

// perRound is this round's share of n requests.
func (r *runner) perRound(n, round int) int {
	return n/r.opt.Rounds + btoi(round < n%r.opt.Rounds)
}

// slotRound runs one round of the latency and the throughput phases.
func (r *runner) slotRound(ctx context.Context, round int) {
	if n := r.perRound(r.opt.N, round); n > 0 {
		for i, t := range r.opt.Targets {
			if tr := &r.res.Targets[i]; !tr.down() {
				r.progress("round %d/%d %s: %d sequential slot requests", round+1, r.opt.Rounds, t.Name, n)
				d, err := r.phase(tr, "latency", func() ([]time.Duration, error) { return r.latency(ctx, t.Service, n) })
				r.lat[i] = append(r.lat[i], d...)
				r.fail(tr, err)
			}
		}
	}
	n := r.perRound(r.opt.Burst, round)
	if n == 0 || r.opt.Inflight == 0 {
		return
	}
	for i, t := range r.opt.Targets {
		if tr := &r.res.Targets[i]; !tr.down() {
			r.progress("round %d/%d %s: %d slot requests, %d in flight", round+1, r.opt.Rounds, t.Name, n, r.opt.Inflight)
			var took time.Duration
			_, err := r.phase(tr, "throughput", func() (_ []time.Duration, err error) {
				took, err = r.throughput(ctx, t.Service, n, r.opt.Inflight)
				return nil, err
			})
			if err == nil {
				r.rates[i] = append(r.rates[i], float64(n)/took.Seconds())
				tr.BurstSlots += n
			}
			r.fail(tr, err)
		}
	}
}

// httpRound uploads one file to each target and the bare handler, then
// downloads each. A failing bare handler ends the run: it is local.
func (r *runner) httpRound(ctx context.Context, round int) error {
	bare := len(r.opt.Targets)
	for i, t := range r.opt.Targets {
		if tr := &r.res.Targets[i]; !tr.down() {
			r.progress("round %d/%d %s: PUT %d bytes", round+1, r.opt.Rounds, t.Name, r.opt.Size)
			var mbps float64
			_, err := r.phase(tr, "put", func() ([]time.Duration, error) {
				slot, err := r.slot(ctx, t.Service, client.File{Name: "bench.bin", Size: r.opt.Size, ContentType: "application/octet-stream"})
				if err != nil {
					return nil, err
				}
				tr.PutHost, tr.GetHost, r.last[i] = host(slot.PutURL), host(slot.GetURL), slot.GetURL
				mbps, err = r.put(ctx, slot.PutURL, slot.PutHeader(), r.opt.Size)
				return nil, err
			})
			if err == nil {
				r.puts[i] = append(r.puts[i], mbps)
			}
			r.fail(tr, err)
		}
	}
	if r.opt.Bare != "" {
		r.progress("round %d/%d bare handler: PUT %d bytes", round+1, r.opt.Rounds, r.opt.Size)
		u := fmt.Sprintf("%s/bench-%d.bin", r.opt.Bare, round)
		mbps, err := r.put(ctx, u, nil, r.opt.Size)
		if err != nil {
			return fmt.Errorf("bare handler: %w", err)
		}
		r.puts[bare], r.last[bare] = append(r.puts[bare], mbps), u
	}
	for i, t := range r.opt.Targets {
		if tr := &r.res.Targets[i]; r.last[i] != "" && !tr.down() {
			r.progress("round %d/%d %s: GET %d bytes", round+1, r.opt.Rounds, t.Name, r.opt.Size)
			var mbps float64
			_, err := r.phase(tr, "get", func() (_ []time.Duration, err error) {
				mbps, err = r.get(ctx, r.last[i], r.opt.Size, io.Discard)
				return nil, err
			})
			if err == nil {
				r.gets[i] = append(r.gets[i], mbps)
			}
			r.fail(tr, err)
		}
	}
	if r.opt.Bare != "" {
		r.progress("round %d/%d bare handler: GET %d bytes", round+1, r.opt.Rounds, r.opt.Size)
		mbps, err := r.get(ctx, r.last[bare], r.opt.Size, io.Discard)
		if err != nil {
			return fmt.Errorf("bare handler: %w", err)
		}
		r.gets[bare] = append(r.gets[bare], mbps)
	}
	return nil
}

// summarize fills in the statistics and checks the last download of each
// target against the pattern.
func (r *runner) summarize(ctx context.Context) {
	for i := range r.res.Targets {
		tr := &r.res.Targets[i]
		tr.SlotLatency = Summarize(r.lat[i])
		tr.SlotRate = NewRate(r.rates[i])
		tr.Put, tr.Get = NewRate(r.puts[i]), NewRate(r.gets[i])
		if r.last[i] != "" && !tr.down() {
			tr.Verified = r.verify(ctx, r.last[i], r.opt.Size, tr)
		}
	}
	if bare := len(r.opt.Targets); r.opt.Bare != "" && r.opt.Size > 0 {
		r.res.Bare = &HTTPResult{Put: NewRate(r.puts[bare]), Get: NewRate(r.gets[bare]), PutHost: host(r.opt.Bare), GetHost: host(r.opt.Bare)}
		r.res.Bare.Verified = r.verify(ctx, r.last[bare], r.opt.Size, nil)
	}
}

func (r *runner) progress(format string, a ...any) {
	if r.opt.Progress != nil {
		fmt.Fprintf(r.opt.Progress, "bench: "+format+"\n", a...)
	}
}

// slot requests a slot within the per-request timeout.
func (r *runner) slot(ctx context.Context, svc jid.JID, f client.File) (client.Slot, error) {
	return requestSlot(ctx, r.opt.Client, svc, f, r.opt.Timeout)
}

// requestSlot requests a slot from svc through c within timeout.
func requestSlot(ctx context.Context, c *client.Client, svc jid.JID, f client.File, timeout time.Duration) (client.Slot, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.RequestSlot(ctx, svc, f)
}

// down reports whether the target failed earlier in the run.
func (t *TargetResult) down() bool { return len(t.Errors) > 0 }

func (r *runner) fail(tr *TargetResult, err error) {
	if err != nil {
		tr.Errors = append(tr.Errors, err.Error())
		r.progress("%s: %v", tr.Name, err)
	}
}

// phase runs f while watching the server processes, and adds what they
// spent to the target's phase.
func (r *runner) phase(tr *TargetResult, name string, f func() ([]time.Duration, error)) ([]time.Duration, error) {
	w := startWatch(r.opt.Procs)
	d, err := f()
	return d, errors.Join(err, w.end(tr.Procs, name))
}

// latency times n slot requests, one after the other.
func (r *runner) latency(ctx context.Context, svc jid.JID, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := r.slot(ctx, svc, slotFile); err != nil {
			return out, fmt.Errorf("slot request: %w", err)
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// throughput times n slot requests with k in flight.
func (r *runner) throughput(ctx context.Context, svc jid.JID, n, k int) (time.Duration, error) {
	return slotBurst(ctx, []*client.Client{r.opt.Client}, svc, n, k, r.opt.Timeout)
}

// slotBurst times n slot requests of slotFile with k in flight, spread
// over the sessions (request i of the k in flight on sessions[i mod len]),
// each within timeout; the first failure ends it.
func slotBurst(ctx context.Context, sessions []*client.Client, svc jid.JID, n, k int, timeout time.Duration) (time.Duration, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	t0 := time.Now()
	for g := range min(k, n) {
		c := sessions[g%len(sessions)]
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := requestSlot(ctx, c, svc, slotFile, timeout); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("slot request: %w", err)
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(t0), first
}

// put uploads size bytes of the pattern and returns MB/s (10^6 bytes).
func (r *runner) put(ctx context.Context, u string, h http.Header, size int64) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, Body(size))
	if err != nil {
		return 0, err
	}
	if h != nil {
		req.Header = h
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = size
	// Start from clean page cache: with ext4's data=ordered an fsync also
	// writes what the previous round left dirty (Prosody does not fsync).
	syscall.Sync()
	t0 := time.Now()
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("PUT %s: %w", client.RedactURL(u), err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(t0)
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("PUT %s: %s", client.RedactURL(u), resp.Status)
	}
	return float64(size) / 1e6 / took.Seconds(), nil
}

// get downloads u into w and returns MB/s; redirects (S3) are followed.
func (r *runner) get(ctx context.Context, u string, size int64, w io.Writer) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	// Large reads: io.Discard alone would read 8 KiB at a time.
	n, err := io.CopyBuffer(writerOnly{w}, resp.Body, make([]byte, 256<<10))
	took := time.Since(t0)
	switch {
	case err != nil:
		return 0, fmt.Errorf("GET %s: %w", u, err)
	case resp.StatusCode != http.StatusOK:
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	case n != size:
		return 0, fmt.Errorf("GET %s: %d bytes, want %d", u, n, size)
	}
	return float64(size) / 1e6 / took.Seconds(), nil
}

// verify downloads u once more, untimed, and compares it with the pattern.
func (r *runner) verify(ctx context.Context, u string, size int64, tr *TargetResult) bool {
	var c patternChecker
	_, err := r.get(ctx, u, size, &c)
	if err == nil {
		err = c.bad
	}
	if err != nil && tr != nil {
		r.fail(tr, fmt.Errorf("verifying the download: %w", err))
	}
	return err == nil
}

func host(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

// writerOnly hides a Writer's ReadFrom, so that io.CopyBuffer uses the buffer.
type writerOnly struct{ io.Writer }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
