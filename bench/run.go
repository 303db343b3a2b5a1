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
	N        int   // slot requests per target for latency, and again for throughput
	Inflight int   // slot requests in flight in the throughput phase
	Size     int64 // PUT/GET file size; 0 skips PUT and GET
	Rounds   int
	Procs    []Proc    // server processes watched during every phase
	Progress io.Writer // one line per phase; nil for none
}

// Result is what Run measured. Ratios compare the first target with the
// second (mediaslot/baseline) and with the bare handler.
type Result struct {
	Started  time.Time      `json:"started"`
	Size     int64          `json:"size_bytes"`
	N        int            `json:"n"`
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
	if opt.Rounds < 1 {
		opt.Rounds = 1
	}
	opt.Inflight = max(opt.Inflight, 0)
	res := &Result{Started: time.Now().UTC(), Size: opt.Size, N: opt.N, Inflight: opt.Inflight, Rounds: opt.Rounds}
	hc := &http.Client{Transport: &http.Transport{
		Proxy: nil, WriteBufferSize: 64 << 10, ReadBufferSize: 64 << 10,
		MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second, DisableCompression: true,
	}}
	r := &runner{opt: opt, http: hc}
	for _, t := range opt.Targets {
		tr := TargetResult{Name: t.Name, Service: t.Service.String(), Procs: map[string]map[string]Usage{}}
		svc, err := opt.Client.Service(ctx, t.Service)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", t.Name, t.Service, err)
		}
		tr.MaxFileSize = svc.MaxFileSize()
		if opt.Size > 0 && tr.MaxFileSize > 0 && opt.Size > tr.MaxFileSize {
			return nil, fmt.Errorf("%s (%s) accepts files up to %d bytes; --size is %d", t.Name, t.Service, tr.MaxFileSize, opt.Size)
		}
		for range warmup {
			if _, err := opt.Client.RequestSlot(ctx, t.Service, slotFile); err != nil {
				return nil, fmt.Errorf("%s (%s): slot request: %w", t.Name, t.Service, err)
			}
		}
		res.Targets = append(res.Targets, tr)
	}
	lat := make([][]time.Duration, len(opt.Targets))
	rates := make([][]float64, len(opt.Targets))
	puts := make([][]float64, len(opt.Targets)+1)
	gets := make([][]float64, len(opt.Targets)+1)
	last := make([]string, len(opt.Targets)+1) // GET URL of the last upload
	perRound := func(n, round int) int { return n/opt.Rounds + btoi(round < n%opt.Rounds) }
	for round := range opt.Rounds {
		for i, t := range opt.Targets {
			n := perRound(opt.N, round)
			if n == 0 {
				continue
			}
			r.progress("round %d/%d %s: %d sequential slot requests", round+1, opt.Rounds, t.Name, n)
			d, err := r.phase(&res.Targets[i], "latency", func() ([]time.Duration, error) { return r.latency(ctx, t.Service, n) })
			lat[i] = append(lat[i], d...)
			r.fail(&res.Targets[i], err)
		}
		for i, t := range opt.Targets {
			n := perRound(opt.N, round)
			if n == 0 || opt.Inflight == 0 {
				continue
			}
			r.progress("round %d/%d %s: %d slot requests, %d in flight", round+1, opt.Rounds, t.Name, n, opt.Inflight)
			var took time.Duration
			_, err := r.phase(&res.Targets[i], "throughput", func() ([]time.Duration, error) {
				var err error
				took, err = r.throughput(ctx, t.Service, n, opt.Inflight)
				return nil, err
			})
			if err == nil {
				rates[i] = append(rates[i], float64(n)/took.Seconds())
			}
			r.fail(&res.Targets[i], err)
		}
		if opt.Size <= 0 {
			continue
		}
		for i, t := range opt.Targets {
			r.progress("round %d/%d %s: PUT %d bytes", round+1, opt.Rounds, t.Name, opt.Size)
			var mbps float64
			_, err := r.phase(&res.Targets[i], "put", func() ([]time.Duration, error) {
				var err error
				var slot client.Slot
				if slot, err = opt.Client.RequestSlot(ctx, t.Service, client.File{Name: "bench.bin", Size: opt.Size, ContentType: "application/octet-stream"}); err != nil {
					return nil, err
				}
				res.Targets[i].PutHost, res.Targets[i].GetHost = host(slot.PutURL), host(slot.GetURL)
				mbps, err = r.put(ctx, slot.PutURL, slot.PutHeader(), opt.Size)
				last[i] = slot.GetURL
				return nil, err
			})
			if err == nil {
				puts[i] = append(puts[i], mbps)
			}
			r.fail(&res.Targets[i], err)
		}
		if opt.Bare != "" {
			r.progress("round %d/%d bare handler: PUT %d bytes", round+1, opt.Rounds, opt.Size)
			u := fmt.Sprintf("%s/bench-%d.bin", opt.Bare, round)
			mbps, err := r.put(ctx, u, nil, opt.Size)
			if err != nil {
				return nil, fmt.Errorf("bare handler: %w", err)
			}
			puts[len(opt.Targets)] = append(puts[len(opt.Targets)], mbps)
			last[len(opt.Targets)] = u
		}
		for i, t := range opt.Targets {
			if last[i] == "" {
				continue
			}
			r.progress("round %d/%d %s: GET %d bytes", round+1, opt.Rounds, t.Name, opt.Size)
			var mbps float64
			_, err := r.phase(&res.Targets[i], "get", func() ([]time.Duration, error) {
				var err error
				mbps, err = r.get(ctx, last[i], opt.Size, io.Discard)
				return nil, err
			})
			if err == nil {
				gets[i] = append(gets[i], mbps)
			}
			r.fail(&res.Targets[i], err)
		}
		if opt.Bare != "" {
			r.progress("round %d/%d bare handler: GET %d bytes", round+1, opt.Rounds, opt.Size)
			mbps, err := r.get(ctx, last[len(opt.Targets)], opt.Size, io.Discard)
			if err != nil {
				return nil, fmt.Errorf("bare handler: %w", err)
			}
			gets[len(opt.Targets)] = append(gets[len(opt.Targets)], mbps)
		}
	}
	for i := range res.Targets {
		tr := &res.Targets[i]
		tr.SlotLatency = Summarize(lat[i])
		tr.SlotRate = NewRate(rates[i])
		tr.Put, tr.Get = NewRate(puts[i]), NewRate(gets[i])
		if last[i] != "" {
			tr.Verified = r.verify(ctx, last[i], opt.Size, tr)
		}
	}
	if opt.Bare != "" && opt.Size > 0 {
		res.Bare = &HTTPResult{Put: NewRate(puts[len(opt.Targets)]), Get: NewRate(gets[len(opt.Targets)]), PutHost: host(opt.Bare), GetHost: host(opt.Bare)}
		res.Bare.Verified = r.verify(ctx, last[len(opt.Targets)], opt.Size, nil)
	}
	return res, nil
}

type runner struct {
	opt  Options
	http *http.Client
}

func (r *runner) progress(format string, a ...any) {
	if r.opt.Progress != nil {
		fmt.Fprintf(r.opt.Progress, "bench: "+format+"\n", a...)
	}
}

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
		if _, err := r.opt.Client.RequestSlot(ctx, svc, slotFile); err != nil {
			return out, fmt.Errorf("slot request: %w", err)
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// throughput times n slot requests with k in flight.
func (r *runner) throughput(ctx context.Context, svc jid.JID, n, k int) (time.Duration, error) {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	t0 := time.Now()
	for range min(k, n) {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := r.opt.Client.RequestSlot(ctx, svc, slotFile); err != nil {
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
