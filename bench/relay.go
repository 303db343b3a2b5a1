package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"mediaslot/client"
)

// RelayOptions configure RunRelay: the offline relay measured end to end
// through the XMPP server.
type RelayOptions struct {
	Sender    client.Options // who sends the media messages (one session per Senders)
	Recipient client.Options // who is offline while they are queued, then logs in
	// Witness is an online account that each sender session finally
	// relays a marker to: the relay handles a sender's messages in order,
	// so when all markers have arrived, every message before them is queued.
	Witness client.Options
	Relay   jid.JID
	N       int // media messages to queue for Recipient
	Senders int // sender sessions
	// Pipeline is how many messages each session keeps in flight: each is
	// followed by a ping to the relay (client.SendMedia) and answered
	// before that goroutine sends the next, so with Prosody's Nagle default
	// one at a time would measure TCP delayed acknowledgements.
	Pipeline  int
	Thumbnail int // bytes of XEP-0231 thumbnail in each message
	Procs     []Proc
	Progress  io.Writer
	Timeout   time.Duration // for each of the two phases; default 5 minutes
	// Nudge, if not zero, pings the server from every sender session at
	// this interval while messages are sent: with Prosody 0.12.3 a c2s
	// TLS connection can stop being read with data still buffered in the
	// TLS layer until more bytes arrive (see docs/BENCHMARKS.md).
	Nudge time.Duration
}

// RelayResult is what RunRelay measured.
type RelayResult struct {
	Started     time.Time `json:"started"`
	N           int       `json:"n"`
	Senders     int       `json:"senders"`
	Pipeline    int       `json:"pipeline"`
	StanzaBytes int       `json:"stanza_bytes"` // of one message as the sender sends it (approximate)
	// EnqueueSeconds runs from the first message sent to the last marker
	// received: every message is then stored (fsync'd) in the relay's queue.
	EnqueueSeconds float64 `json:"enqueue_s"`
	EnqueueRate    float64 `json:"enqueue_per_s"`
	// LoginSeconds is the recipient's connection, STARTTLS, SASL and bind.
	LoginSeconds float64 `json:"login_s"`
	// FirstSeconds and FlushSeconds run from the recipient's available
	// presence to the first and to the last of the N messages received.
	FirstSeconds float64 `json:"first_s"`
	FlushSeconds float64 `json:"flush_s"`
	FlushRate    float64 `json:"flush_per_s"`
	Received     int     `json:"received"`
	Earlier      int     `json:"earlier"` // messages queued before this run, received first
	Duplicates   int     `json:"duplicates"`
	OutOfOrder   int     `json:"out_of_order"` // a sender's message arriving after a later one of it
	// Procs: what each watched process spent in the phases enqueue and flush.
	Procs map[string]map[string]Usage `json:"procs,omitempty"`
}

// RunRelay queues N media messages with thumbnails for an offline
// recipient through the relay, then logs the recipient in and times the
// flush until the last message arrives.
func RunRelay(ctx context.Context, opt RelayOptions) (*RelayResult, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Minute
	}
	opt.Senders = max(1, min(opt.Senders, opt.N))
	opt.Pipeline = max(1, opt.Pipeline)
	res := &RelayResult{Started: time.Now().UTC(), N: opt.N, Senders: opt.Senders, Pipeline: opt.Pipeline, Procs: map[string]map[string]Usage{}}
	run := randomHex(4) // tells this run's messages from earlier ones
	say := func(format string, a ...any) {
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "bench relay: "+format+"\n", a...)
		}
	}

	markers := make(chan string, opt.Senders)
	wopt := opt.Witness
	wopt.OnMessage = func(m client.Message) {
		if s, ok := strings.CutPrefix(m.Body, "marker:"+run+":"); ok {
			markers <- s
		}
	}
	witness, err := client.Dial(ctx, wopt)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	defer witness.Close()
	if err := witness.SendPresence(ctx); err != nil {
		return nil, err
	}
	senders, err := dialAll(ctx, opt.Sender, opt.Senders)
	defer func() {
		for _, s := range senders {
			s.Close()
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	thumb := make([]byte, opt.Thumbnail)
	_, _ = rand.Read(thumb)
	recipient := opt.Recipient.JID.Bare()
	media := func(sender, seq int) client.Media {
		name := fmt.Sprintf("%s-%03d-%06d.jpg", run, sender, seq)
		m := client.Media{
			URL:  "http://127.0.0.1/file/" + strings.Repeat("0", 32) + "/" + name,
			Name: name, MediaType: "image/jpeg", Size: 2_345_678, Width: 4000, Height: 3000,
		}
		if len(thumb) > 0 {
			m.Thumbnail = &client.Thumbnail{Data: thumb, MediaType: "image/png", Width: 96, Height: 72}
		}
		return m
	}
	res.StanzaBytes = approxStanzaBytes(media(0, 0))

	say("queueing %d messages with %d-byte thumbnails for %s from %d sessions, %d in flight each", opt.N, opt.Thumbnail, recipient, opt.Senders, opt.Pipeline)
	w := startWatch(opt.Procs)
	t0 := time.Now()
	var next atomic.Int64
	errs := make(chan error, opt.Senders)
	nudged := make(chan struct{})
	defer close(nudged)
	if opt.Nudge > 0 {
		for _, s := range senders {
			go nudge(ctx, s, opt.Sender.JID.Domain(), opt.Nudge, nudged)
		}
	}
	for i, s := range senders {
		go func() {
			// Each goroutine's messages are in order; the marker goes
			// after all of them, from the same session.
			var wg sync.WaitGroup
			var failed atomic.Pointer[error]
			for g := range opt.Pipeline {
				wg.Go(func() {
					for seq := 0; next.Add(1) <= int64(opt.N); seq++ {
						if err := s.SendMedia(ctx, media(i*opt.Pipeline+g, seq), client.Delivery{Relay: opt.Relay, To: []jid.JID{recipient}}); err != nil {
							failed.Store(&err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := failed.Load(); err != nil {
				errs <- *err
				return
			}
			errs <- s.SendMedia(ctx, client.Media{URL: fmt.Sprintf("marker:%s:%d", run, i)}, client.Delivery{Relay: opt.Relay, To: []jid.JID{opt.Witness.JID.Bare()}})
		}()
	}
	deadline := time.After(opt.Timeout)
	for got, sent := 0, 0; got < opt.Senders; {
		select {
		case err := <-errs:
			if err != nil {
				return nil, fmt.Errorf("sending: %w", err)
			}
			sent++
		case <-markers:
			got++
		case <-deadline:
			return nil, fmt.Errorf("only %d of %d senders' messages were relayed within %v", got, opt.Senders, opt.Timeout)
		}
	}
	res.EnqueueSeconds = time.Since(t0).Seconds()
	res.EnqueueRate = float64(opt.N) / res.EnqueueSeconds
	if err := w.end(res.Procs, "enqueue"); err != nil {
		return nil, err
	}
	say("queued in %.2f s (%.0f messages/s); logging in %s", res.EnqueueSeconds, res.EnqueueRate, recipient)

	var (
		mu       sync.Mutex
		seen     = map[string]bool{}
		lastSeq  = map[int]int{}
		first    time.Time
		last     time.Time
		allIn    = make(chan struct{})
		received int
	)
	ropt := opt.Recipient
	ropt.OnMessage = func(m client.Message) {
		now := time.Now()
		if len(m.Files) == 0 {
			return
		}
		name := m.Files[0].Name
		mu.Lock()
		defer mu.Unlock()
		if first.IsZero() {
			first = now
		}
		rest, ok := strings.CutPrefix(name, run+"-")
		if !ok {
			res.Earlier++
			return
		}
		if seen[name] {
			res.Duplicates++
			return
		}
		seen[name] = true
		var s, q int
		if _, err := fmt.Sscanf(strings.TrimSuffix(rest, ".jpg"), "%d-%d", &s, &q); err == nil {
			if prev, ok := lastSeq[s]; ok && q < prev {
				res.OutOfOrder++
			}
			lastSeq[s] = q
		}
		received++
		last = now
		if received == opt.N {
			close(allIn)
		}
	}
	w = startWatch(opt.Procs)
	t1 := time.Now()
	rc, err := client.Dial(ctx, ropt)
	if err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	defer rc.Close()
	res.LoginSeconds = time.Since(t1).Seconds()
	t2 := time.Now()
	if err := rc.SendPresence(ctx); err != nil {
		return nil, err
	}
	select {
	case <-allIn:
	case <-time.After(opt.Timeout):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := w.end(res.Procs, "flush"); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	res.Received = received
	if !first.IsZero() {
		res.FirstSeconds = first.Sub(t2).Seconds()
	}
	if received < opt.N {
		return res, fmt.Errorf("%d of %d messages arrived within %v", received, opt.N, opt.Timeout)
	}
	res.FlushSeconds = last.Sub(t2).Seconds()
	res.FlushRate = float64(opt.N) / res.FlushSeconds
	say("%d messages arrived %.2f s after the presence (first after %.3f s; login %.2f s)", received, res.FlushSeconds, res.FirstSeconds, res.LoginSeconds)
	return res, nil
}

// nudge pings the server every interval until done is closed.
func nudge(ctx context.Context, c *client.Client, server jid.JID, interval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			go func() { _ = c.Ping(ctx, server) }()
		}
	}
}

// dialAll opens n sessions of one account at once.
func dialAll(ctx context.Context, opt client.Options, n int) ([]*client.Client, error) {
	out := make([]*client.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i], errs[i] = client.Dial(ctx, opt) })
	}
	wg.Wait()
	var ok []*client.Client
	for _, c := range out {
		if c != nil {
			ok = append(ok, c)
		}
	}
	return ok, errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// approxStanzaBytes estimates a media message's size on the wire: the
// thumbnail in base64 and about 1 KB of URLs, metadata and addresses.
func approxStanzaBytes(m client.Media) int {
	n := 1024 + 3*len(m.URL)
	if m.Thumbnail != nil {
		n += (len(m.Thumbnail.Data) + 2) / 3 * 4
	}
	return n
}

// WriteJSON writes the result for scripts.
func (r *RelayResult) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteTable writes the result for people.
func (r *RelayResult) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "relay: %d messages of about %d bytes from %d sessions, %d in flight each\n", r.N, r.StanzaBytes, r.Senders, r.Pipeline)
	fmt.Fprintf(w, "  queued (stored, fsync'd)     %8.2f s  %8.0f messages/s\n", r.EnqueueSeconds, r.EnqueueRate)
	fmt.Fprintf(w, "  recipient login              %8.2f s\n", r.LoginSeconds)
	fmt.Fprintf(w, "  presence -> first message    %8.3f s\n", r.FirstSeconds)
	fmt.Fprintf(w, "  presence -> last message     %8.2f s  %8.0f messages/s\n", r.FlushSeconds, r.FlushRate)
	fmt.Fprintf(w, "  received %d (+%d queued earlier), duplicates %d, out of order %d\n", r.Received, r.Earlier, r.Duplicates, r.OutOfOrder)
	for _, p := range sortedKeys(r.Procs) {
		for _, ph := range []string{"enqueue", "flush"} {
			if u, ok := r.Procs[p][ph]; ok {
				fmt.Fprintf(w, "  %s %-8s CPU %6.2f s (%.0f µs/message)  peak RSS %.1f MB (anon %.1f, file %.1f)\n",
					p, ph, u.CPUSeconds, u.CPUSeconds*1e6/float64(r.N), mb(u.PeakRSS), mb(u.PeakAnon), mb(u.PeakFile))
			}
		}
	}
}
