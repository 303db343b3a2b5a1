package xmpp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mediaslot/internal/dbfile/dbfiletest"
	"mediaslot/offline"
	"mediaslot/offline/offlinetest"
	"mediaslot/store"
	"mediaslot/store/disk"
	"mediaslot/store/s3"
	"mediaslot/testserver"
	"mediaslot/upload"
	"mediaslot/upload/slotstore/boltslots"
	"mediaslot/xmpp/relay"
	"mediaslot/xmpp/wire"
)

// Benchmarks of the component's stanza handling without a network: a
// stanza is parsed from bytes as the read loop parses it, handled, and the
// reply encoded as the session encodes it. They measure and never fail on
// speed; scripts/bench.sh runs them for docs/BENCHMARKS.md.

// benchStream is an endless component stream repeating the same stanzas,
// so that one long-lived decoder reads them as the read loop does.
type benchStream struct {
	data []byte
	off  int
}

func newBenchStream(stanzas ...string) *benchStream {
	var b bytes.Buffer
	for _, s := range stanzas {
		b.WriteString(s)
	}
	return &benchStream{data: b.Bytes()}
}

func (s *benchStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], s.data[s.off:])
		n += c
		s.off = (s.off + c) % len(s.data)
	}
	return n, nil
}

// benchReader returns a function that reads the next stanza of the stream.
func benchReader(b *testing.B, stanzas ...string) func() wire.Stanza {
	d := xml.NewDecoder(io.MultiReader(bytes.NewReader([]byte(`<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>`)), newBenchStream(stanzas...)))
	if _, err := d.Token(); err != nil {
		b.Fatal(err)
	}
	return func() wire.Stanza {
		for {
			tok, err := d.Token()
			if err != nil {
				b.Fatal(err)
			}
			if start, ok := tok.(xml.StartElement); ok {
				st, err := wire.Read(d, start)
				if err != nil {
					b.Fatal(err)
				}
				return st
			}
		}
	}
}

// benchSender writes what the handler sends into nothing, one stanza at
// a time as the link does, and calls sent after each stanza.
func benchSender(sent func()) wire.Sender {
	var mu sync.Mutex
	return func(_ context.Context, stanza []byte, _ wire.SendMode) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := io.Discard.Write(stanza)
		sent()
		return err
	}
}

func benchLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// benchSlotIQ is a XEP-0363 request as Conversations sends it (through Prosody).
const benchSlotIQ = `<iq type='get' id='a7d8f3c2-slot' from='alice@example.net/Conversations.x1y2' to='upload.example.net'>` +
	`<request xmlns='urn:xmpp:http:upload:0' filename='IMG_20261125_080000.jpg' size='2345678' content-type='image/jpeg'/></iq>`

// fixedSlots issues the same slot at once, so that only stanza handling is measured.
type fixedSlots struct{}

func (fixedSlots) MaxFileSize() int64 { return 104857600 }

func (fixedSlots) Issue(context.Context, upload.Request) (upload.Slot, error) {
	return upload.Slot{
		ID:     "0123456789abcdef0123456789abcdef",
		PutURL: "https://upload.example.net/upload/0123456789abcdef0123456789abcdef/IMG_20261125_080000.jpg?e=1795000000&t=AAAAAAAAAAAAAAAAAAAAAA",
		GetURL: "https://upload.example.net/file/0123456789abcdef0123456789abcdef/IMG_20261125_080000.jpg",
	}, nil
}

// BenchmarkSlotIQ is one slot request at a time through the handler with a
// service that answers at once: parse, dispatch, reply encoding.
func BenchmarkSlotIQ(b *testing.B) {
	next := benchReader(b, benchSlotIQ)
	done := make(chan struct{}, 1)
	send := benchSender(func() { done <- struct{}{} })
	h := newDispatcher("upload.example.net", Options{Version: "bench", Slots: fixedSlots{}, Logger: benchLogger()})
	ctx := context.Background()
	b.ReportAllocs()
	for range b.N {
		h.handle(ctx, next(), send)
		<-done
	}
}

// BenchmarkSlotIQService reads slot requests on one goroutine and answers
// them there, as the read loop does, through the handler and a real
// upload.Service (bbolt, group commit, fsync in the background): the
// component's capacity without the network and the XMPP server.
func BenchmarkSlotIQService(b *testing.B) {
	st, err := disk.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	slotIQService(b, st)
}

// BenchmarkSlotIQServiceS3 is BenchmarkSlotIQService with the S3 store:
// slots carry presigned URLs (signed locally; nothing is sent).
func BenchmarkSlotIQServiceS3(b *testing.B) {
	st, err := s3.New(context.Background(), s3.Options{
		Endpoint: "http://127.0.0.1:9", Region: "us-east-1", Bucket: "mediaslot",
		AccessKeyID: "bench", SecretAccessKey: "benchsecretkey123", PathStyle: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	slotIQService(b, st)
}

func slotIQService(b *testing.B, st store.Store) {
	db, w := dbfiletest.New(b)
	_, direct := st.(store.Presigner)
	rs, err := boltslots.Open(db, w, boltslots.Options{Direct: direct})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := upload.New(upload.Options{
		Policy:  upload.Policy{MaxFileSize: 104857600, SlotLifetime: 5 * time.Minute, AllowedDomains: []string{"example.net"}},
		Records: rs, Store: st, Key: []byte("0123456789abcdef0123456789abcdef"),
		PublicURL: "https://upload.example.net", Logger: benchLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	next := benchReader(b, benchSlotIQ)
	inflight := make(chan struct{}, 16)
	send := benchSender(func() { <-inflight })
	h := newDispatcher("upload.example.net", Options{Version: "bench", Slots: svc, Logger: benchLogger()})
	ctx := context.Background()
	cpu0 := testserver.SelfCPU(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		inflight <- struct{}{}
		h.handle(ctx, next(), send)
	}
	for range cap(inflight) {
		inflight <- struct{}{}
	}
	if err := w.Flush(ctx); err != nil { // the slot records still lingering
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "slots/s")
	b.ReportMetric(float64(testserver.SelfCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/slot")
}

// benchThumbnail is the size of the XEP-0231 thumbnail in relayed messages:
// with the metadata around it the stored stanza is about 8 KB.
const benchThumbnail = 5600

// benchRelayMessage is a media message with an 8 KB stanza's worth of
// thumbnail from sender to the relay, for recipient.
func benchRelayMessage(b *testing.B, id, sender, recipient string) string {
	thumb := make([]byte, benchThumbnail)
	if _, err := rand.Read(thumb); err != nil {
		b.Fatal(err)
	}
	sum := sha1.Sum(thumb)
	cid := "sha1+" + hex.EncodeToString(sum[:]) + "@bob.xmpp.org"
	link := "https://upload.example.net/file/0123456789abcdef0123456789abcdef/IMG_20261125_080000.jpg"
	return `<message type='chat' id='` + id + `' from='` + sender + `' to='upload.example.net'>` +
		`<body>` + link + `</body><x xmlns='jabber:x:oob'><url>` + link + `</url></x>` +
		`<file-sharing xmlns='urn:xmpp:sfs:0' disposition='inline'><file xmlns='urn:xmpp:file:metadata:0'>` +
		`<media-type>image/jpeg</media-type><name>IMG_20261125_080000.jpg</name><size>2345678</size><width>4000</width><height>3000</height>` +
		`<hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>2Ghtzkiu/IIhuTjLh/YdWHn6bk2MkKJeS6Wzm/IcWUg=</hash>` +
		`<thumbnail xmlns='urn:xmpp:thumbs:1' uri='cid:` + cid + `' media-type='image/png' width='96' height='72'/></file>` +
		`<sources><url-data xmlns='http://jabber.org/protocol/url-data' target='` + link + `'/></sources></file-sharing>` +
		`<data xmlns='urn:xmpp:bob' cid='` + cid + `' type='image/png' max-age='86400'>` + base64.StdEncoding.EncodeToString(thumb) + `</data>` +
		`<addresses xmlns='http://jabber.org/protocol/address'><address type='to' jid='` + recipient + `'/></addresses></message>`
}

// countingQueue counts the stanzas the relay stored, and lets a benchmark
// wait for a count.
type countingQueue struct {
	offline.Queue
	mu     sync.Mutex
	grown  *sync.Cond // on mu, broadcast when stored grows
	stored int64
}

func (q *countingQueue) Enqueue(ctx context.Context, sender string, recipients []string, stanza []byte) error {
	return q.stored1(q.Queue.Enqueue(ctx, sender, recipients, stanza))
}

// stored1 counts a stanza stored if err is nil, and returns err.
func (q *countingQueue) stored1(err error) error {
	if err == nil {
		q.mu.Lock()
		q.stored++
		q.grown.Broadcast()
		q.mu.Unlock()
	}
	return err
}

// EnqueueStart counts as Enqueue does, once the stanza committed: the
// relay starts its enqueues on a BoltQueue (relay.starter), as in serve.
func (q *countingQueue) EnqueueStart(ctx context.Context, sender string, recipients []string, stanza []byte) (func() error, error) {
	wait, err := q.Queue.(*offline.BoltQueue).EnqueueStart(ctx, sender, recipients, stanza)
	if err != nil {
		return nil, err
	}
	return func() error { return q.stored1(wait()) }, nil
}

// count returns how many stanzas were stored.
func (q *countingQueue) count() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stored
}

// waitStored waits until at least n stanzas were stored.
func (q *countingQueue) waitStored(n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.stored < n {
		q.grown.Wait()
	}
}

// benchRelay is a handler with the relay on a bbolt queue opened as
// `mediaslot serve` opens it, told by the server that it has the message
// and presence privileges.
func benchRelay(b *testing.B, send wire.Sender) (*dispatcher, *countingQueue) {
	oq := offlinetest.New(b, offline.Limits{
		MaxMessages: 1 << 30, MaxBytes: 1 << 50, SenderShare: 1,
		MaxSenderMessages: 1 << 30, MaxSenderBytes: 1 << 50,
		MaxTotalMessages: 1 << 30, MaxTotalBytes: 1 << 50,
		MaxUnseenMessages: 1 << 30, MaxUnseenBytes: 1 << 50,
	})
	q := &countingQueue{Queue: oq}
	q.grown = sync.NewCond(&q.mu)
	h := newDispatcher("upload.example.net", Options{Version: "bench", Slots: fixedSlots{}, Logger: benchLogger(), Queue: q,
		Relay: relay.Policy{
			SenderDomains: []string{"example.net"}, RecipientDomains: []string{"example.net"},
			MaxStanzaBytes: 64 << 10, MaxBoBBytes: 8 << 10, MaxRecipients: 64,
		}})
	next := benchReader(b, `<message from='example.net' to='upload.example.net'><privilege xmlns='urn:xmpp:privilege:2'>`+
		`<perm access='message' type='outgoing'/><perm access='presence' type='managed_entity'/></privilege></message>`)
	h.handle(context.Background(), next(), send)
	return h, q
}

// benchSenders is how many clients send at once in the relay benchmarks;
// each sender's messages are stored in order, so they are what lets
// commits group.
const benchSenders = 64

// relayEnqueue feeds n 8 KB relay messages for bob, who is offline, from
// benchSenders senders to the relay and waits until all are stored.
func relayEnqueue(b *testing.B, h *dispatcher, q *countingQueue, send wire.Sender, n int) {
	var msgs []string
	for i := range benchSenders {
		msgs = append(msgs, benchRelayMessage(b, fmt.Sprint("m", i), fmt.Sprintf("user%d@example.net/phone", i), "bob@example.net"))
	}
	next := benchReader(b, msgs...)
	base := q.count()
	ctx := context.Background()
	for i := range n {
		// The relay refuses a sender's messages past its share, and any
		// past its bound on waiting bytes, instead of holding up the
		// read loop; clients wait for the ping answer after a batch. Keep
		// well within both (a quarter of each sender's share is 16 MiB).
		q.waitStored(base + int64(i) - benchSenders*relay.SenderInFlight/4 + 1)
		h.handle(ctx, next(), send)
	}
	q.waitStored(base + int64(n))
}

// BenchmarkRelayEnqueue stores 8 KB media messages for an offline
// recipient from 64 senders at once: parse, XEP-0033 and XEP-0231 checks,
// rendering, and the durable enqueue through group commit.
func BenchmarkRelayEnqueue(b *testing.B) {
	send := benchSender(func() { b.Error("the relay answered: an error message") })
	h, q := benchRelay(b, send)
	cpu0 := testserver.SelfCPU(b)
	b.SetBytes(8 << 10)
	b.ReportAllocs()
	b.ResetTimer()
	relayEnqueue(b, h, q, send, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "stanzas/s")
	b.ReportMetric(float64(testserver.SelfCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/stanza")
}

// BenchmarkRelayDrain delivers 10,000 queued 8 KB messages to a recipient
// who comes online, from his available presence to the last stanza
// written: queue reads, delay stamps, XEP-0356 forwarding, encoding.
func BenchmarkRelayDrain(b *testing.B) {
	const queued = 10_000
	var delivered atomic.Int64
	all := make(chan struct{}, 1)
	send := benchSender(func() {
		if delivered.Add(1) == queued {
			all <- struct{}{}
		}
	})
	h, q := benchRelay(b, send)
	ctx := context.Background()
	online := benchReader(b, `<presence from='bob@example.net/laptop' to='upload.example.net'/>`)
	offline := benchReader(b, `<presence type='unavailable' from='bob@example.net/laptop' to='upload.example.net'/>`)
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		relayEnqueue(b, h, q, send, queued)
		delivered.Store(0)
		runtime.GC()
		b.StartTimer()
		h.handle(ctx, online(), send)
		<-all
		b.StopTimer()
		h.handle(ctx, offline(), send)
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/10k")
}
