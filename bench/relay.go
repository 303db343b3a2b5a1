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
	// Direct sends the messages (and the markers) plainly to their
	// recipient instead of through Relay: the server's own offline storage
	// (mod_offline) keeps them, the baseline the relay is compared with.
	Direct  bool
	N       int // media messages to queue for Recipient
	Senders int // sender sessions
	// Pipeline is how many messages each session keeps in flight: each is
	// followed by a ping to the relay (client.SendMedia) that must be
	// answered before that goroutine sends the next; one at a time
	// measured round trips (about 80 messages/s here), not the relay.
	Pipeline  int
	Thumbnail int // bytes of XEP-0231 thumbnail in each message
	Procs     []Proc
	Progress  io.Writer
	Timeout   time.Duration // for each of the two phases; default 5 minutes
	// Stall ends a phase early when nothing progresses for this long;
	// default 15 s.
	Stall time.Duration
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
	// KeptBy counts the messages received by who stamped their XEP-0203
	// delay: the relay's JID, the server's domain, or "" (none: delivered live).
	KeptBy map[string]int `json:"kept_by,omitempty"`
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
	if opt.Stall <= 0 {
		opt.Stall = 15 * time.Second
	}
	opt.Senders = max(1, min(opt.Senders, opt.N))
	opt.Pipeline = max(1, opt.Pipeline)
	r := &relayRun{
		opt: opt,
		res: &RelayResult{Started: time.Now().UTC(), N: opt.N, Senders: opt.Senders, Pipeline: opt.Pipeline, Procs: map[string]map[string]Usage{}},
		run: randomHex(4),
	}
	r.thumb = make([]byte, opt.Thumbnail)
	_, _ = rand.Read(r.thumb)
	r.res.StanzaBytes = approxStanzaBytes(r.media(0, 0))
	if err := r.enqueue(ctx); err != nil {
		return nil, err
	}
	return r.res, r.flush(ctx)
}

// relayRun is one RunRelay.
type relayRun struct {
	opt   RelayOptions
	res   *RelayResult
	run   string // tells this run's messages from earlier ones
	thumb []byte
}

func (r *relayRun) say(format string, a ...any) {
	if r.opt.Progress != nil {
		fmt.Fprintf(r.opt.Progress, "bench relay: "+format+"\n", a...)
	}
}

// media is message seq of sender: its name says which.
func (r *relayRun) media(sender, seq int) client.Media {
	name := fmt.Sprintf("%s-%03d-%06d.jpg", r.run, sender, seq)
	m := client.Media{
		URL:  "http://127.0.0.1/file/" + strings.Repeat("0", 32) + "/" + name,
		Name: name, MediaType: "image/jpeg", Size: 2_345_678, Width: 4000, Height: 3000,
	}
	if len(r.thumb) > 0 {
		m.Thumbnail = &client.Thumbnail{Data: r.thumb, MediaType: "image/png", Width: 96, Height: 72}
	}
	return m
}

// enqueue sends the N messages and waits for every sender's marker.
func (r *relayRun) enqueue(ctx context.Context) error {
	opt := r.opt
	markers := make(chan string, opt.Senders)
	wopt := opt.Witness
	wopt.OnMessage = func(m client.Message) {
		if s, ok := strings.CutPrefix(m.Body, "marker:"+r.run+":"); ok {
			markers <- s
		}
	}
	witness, err := client.Dial(ctx, wopt)
	if err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	defer witness.Close()
	if err := witness.SendPresence(ctx); err != nil {
		return err
	}
	senders, err := dialAll(ctx, opt.Sender, opt.Senders)
	defer func() {
		for _, s := range senders {
			s.Close()
		}
	}()
	if err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	recipient := opt.Recipient.JID.Bare()
	via := client.Delivery{Relay: opt.Relay, To: []jid.JID{recipient}}
	marker := client.Delivery{Relay: opt.Relay, To: []jid.JID{opt.Witness.JID.Bare()}}
	if opt.Direct {
		via.Relay, marker.Relay = jid.JID{}, jid.JID{}
	}
	r.say("queueing %d messages with %d-byte thumbnails for %s from %d sessions, %d in flight each", opt.N, opt.Thumbnail, recipient, opt.Senders, opt.Pipeline)
	w := startWatch(opt.Procs)
	t0 := time.Now()
	var next, sent atomic.Int64
	errs := make(chan error, opt.Senders)
	for i, s := range senders {
		go func() {
			// Each goroutine's messages are in order; the marker goes
			// after all of them, from the same session.
			var wg sync.WaitGroup
			var failed atomic.Pointer[error]
			for g := range opt.Pipeline {
				wg.Go(func() {
					for seq := 0; next.Add(1) <= int64(opt.N); seq++ {
						if err := s.SendMedia(ctx, r.media(i*opt.Pipeline+g, seq), via); err != nil {
							failed.Store(&err)
							return
						}
						sent.Add(1)
					}
				})
			}
			wg.Wait()
			if err := failed.Load(); err != nil {
				errs <- *err
				return
			}
			errs <- s.SendMedia(ctx, client.Media{URL: fmt.Sprintf("marker:%s:%d", r.run, i)}, marker)
		}()
	}
	got := 0
	err = r.wait(ctx, func() (bool, int64, error) {
		for {
			select {
			case err := <-errs:
				if err != nil {
					return false, 0, fmt.Errorf("sending: %w", err)
				}
				continue
			case <-markers:
				got++
				continue
			default:
			}
			return got == opt.Senders, sent.Load() + int64(got), nil
		}
	})
	if err != nil {
		return fmt.Errorf("%w (%d of %d messages confirmed)", err, sent.Load(), opt.N)
	}
	r.res.EnqueueSeconds = time.Since(t0).Seconds()
	r.res.EnqueueRate = float64(opt.N) / r.res.EnqueueSeconds
	if err := w.end(r.res.Procs, "enqueue"); err != nil {
		return err
	}
	r.say("queued in %.2f s (%.0f messages/s); logging in %s", r.res.EnqueueSeconds, r.res.EnqueueRate, recipient)
	return nil
}

// wait polls check every 10 ms until it reports done or an error, and
// fails when its progress count stands still for opt.Stall or the phase
// exceeds opt.Timeout.
func (r *relayRun) wait(ctx context.Context, check func() (done bool, progress int64, err error)) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	start, last, lastAt := time.Now(), int64(-1), time.Now()
	for {
		done, p, err := check()
		switch {
		case err != nil:
			return err
		case done:
			return nil
		case p != last:
			last, lastAt = p, time.Now()
		case time.Since(lastAt) > r.opt.Stall:
			return fmt.Errorf("stalled: no progress for %v", r.opt.Stall)
		}
		if time.Since(start) > r.opt.Timeout {
			return fmt.Errorf("not done within %v", r.opt.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// inbox is what the recipient received.
type inbox struct {
	run         string
	mu          sync.Mutex
	seen        map[string]bool
	lastSeq     map[int]int
	first, last time.Time
	received    int
	earlier     int
	duplicates  int
	outOfOrder  int
	keptBy      map[string]int
}

func (in *inbox) add(m client.Message) {
	now := time.Now()
	if len(m.Files) == 0 {
		return
	}
	name := m.Files[0].Name
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.first.IsZero() {
		in.first = now
	}
	rest, ok := strings.CutPrefix(name, in.run+"-")
	switch {
	case !ok:
		in.earlier++
		return
	case in.seen[name]:
		in.duplicates++
		return
	}
	in.seen[name] = true
	in.keptBy[m.DelayFrom]++
	var s, q int
	if _, err := fmt.Sscanf(strings.TrimSuffix(rest, ".jpg"), "%d-%d", &s, &q); err == nil {
		if prev, ok := in.lastSeq[s]; ok && q < prev {
			in.outOfOrder++
		}
		in.lastSeq[s] = q
	}
	in.received++
	in.last = now
}

// flush logs the recipient in and waits for all N messages.
func (r *relayRun) flush(ctx context.Context) error {
	in := &inbox{run: r.run, seen: map[string]bool{}, lastSeq: map[int]int{}, keptBy: map[string]int{}}
	ropt := r.opt.Recipient
	ropt.OnMessage = in.add
	w := startWatch(r.opt.Procs)
	t1 := time.Now()
	rc, err := client.Dial(ctx, ropt)
	if err != nil {
		return fmt.Errorf("recipient: %w", err)
	}
	defer func() {
		// Gone for the server and for the relay: ejabberd reports no
		// presence for a stream that just ends (docs/EJABBERD.md).
		_ = rc.SendUnavailable(ctx)
		rc.Close()
	}()
	r.res.LoginSeconds = time.Since(t1).Seconds()
	t2 := time.Now()
	if err := rc.SendPresence(ctx); err != nil {
		return err
	}
	err = r.wait(ctx, func() (bool, int64, error) {
		in.mu.Lock()
		defer in.mu.Unlock()
		return in.received == r.opt.N, int64(in.received + in.earlier), nil
	})
	if werr := w.end(r.res.Procs, "flush"); werr != nil && err == nil {
		err = werr
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	res := r.res
	res.Received, res.Earlier, res.Duplicates, res.OutOfOrder, res.KeptBy = in.received, in.earlier, in.duplicates, in.outOfOrder, in.keptBy
	if !in.first.IsZero() {
		res.FirstSeconds = in.first.Sub(t2).Seconds()
	}
	if err != nil {
		return fmt.Errorf("%w (%d of %d messages arrived)", err, in.received, r.opt.N)
	}
	res.FlushSeconds = in.last.Sub(t2).Seconds()
	res.FlushRate = float64(r.opt.N) / res.FlushSeconds
	r.say("%d messages arrived %.2f s after the presence (first after %.3f s; login %.2f s)", in.received, res.FlushSeconds, res.FirstSeconds, res.LoginSeconds)
	return nil
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
