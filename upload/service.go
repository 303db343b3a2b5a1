// Package upload issues upload slots, keeps their records, and serves the
// HTTP side: uploads into the disk store, downloads from it, and for S3
// direct uploads, redirects, proxied or public downloads.
//
// A slot is a 128-bit id with a record in a slotstore.Store (owner, name,
// size, type, expiry, state). The id starts with the time of issue in
// milliseconds (48 bits), so that new records append to a B+tree (bbolt's,
// PostgreSQL's index) instead of each rewriting a random page (a commit of
// 20 slots wrote 45 pages with random ids, 11 with these); 80 random bits
// make it unguessable. It is also the
// S3 object key: S3 scales a busy key prefix by itself, far beyond the
// uploads one XMPP service sees.
//
// A slot's PUT URL carries the authorisation itself, an HMAC token over the
// slot's facts and expiry, because many clients drop the headers a slot
// asks for. Its GET URL is stable and unsigned but unguessable,
// so it keeps working in message archives and offline deliveries. The package
// knows nothing of XMPP: xmpp/httpupload turns stanzas into Requests, and
// its refusals are *refusal.Error, which go out through the refusal table.
package upload

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"mediaslot/internal/thumbnail"
	"mediaslot/refusal"
	"mediaslot/store"
	"mediaslot/upload/slotstore"
)

// Slot is an issued upload slot.
type Slot struct {
	ID         string
	PutURL     string
	PutHeaders map[string]string // headers the PUT must carry; none for the disk store
	GetURL     string
	Expires    time.Time
}

// Options configure a Service.
type Options struct {
	Policy
	// Records keeps the slot records and the quota accounting.
	Records slotstore.Store
	// Store holds the files. A store.Presigner (S3) takes uploads directly:
	// slots then carry its presigned PUT URLs, and the HTTP front only
	// answers downloads, as Download says.
	Store    store.Store
	Download Download
	// CheckInterval is how often Run probes a store that can tell whether
	// it is reachable (S3); 30 s if zero.
	CheckInterval time.Duration
	Key           []byte // HMAC key for PUT URLs of the disk store
	PublicURL     string // base URL of the HTTP front, as clients reach it
	CORSOrigin    []string
	Logger        *slog.Logger
	Now           func() time.Time // for tests; time.Now if nil
	// Observer is told of uploads and downloads, for metrics; nil tells
	// nobody.
	Observer Observer
}

// DownloadMode says how the HTTP front serves GETs of files in a store.Presigner.
type DownloadMode string

// Download modes.
const (
	// Redirect answers GET with a 302 to a fresh presigned GET URL valid for
	// Download.URLLifetime: the bytes never pass through mediaslot.
	Redirect DownloadMode = "redirect"
	// Proxy streams the file through mediaslot (Range passed on to the store).
	Proxy DownloadMode = "proxy"
	// Public answers GET with a 302 to the object's URL under
	// Download.PublicURL (store.Presigner.PublicURL: prefix and key), for a
	// public bucket or a CDN in front of it. The bucket's origin serves the
	// object with its stored type and no forced disposition.
	Public DownloadMode = "public"
)

// Download configures downloads from a store.Presigner. HEAD is always
// answered from the slot record, since presigned GET URLs refuse HEAD.
type Download struct {
	Mode        DownloadMode
	PublicURL   string        // for Public: base URL of the objects
	URLLifetime time.Duration // for Redirect
}

// Service issues slots and serves the HTTP side of the disk store.
type Service struct {
	opt    Options
	direct store.Presigner // non-nil when clients upload to the store directly
	health health
	limit  *limiter // slot requests per user; nil: unlimited
	sign   *signer
	base   string
	log    *slog.Logger
	now    func() time.Time
	active sync.Map // slot ids with a PUT in progress: true once its body is read

	mu      sync.Mutex
	putting map[string]int // PUTs in progress per owner

	previews *thumbnail.Maker // the relay's thumbnails, once per slot
}

// New returns a Service.
func New(opt Options) (*Service, error) {
	if opt.Records == nil {
		return nil, errors.New("upload: no slot record store (Options.Records)")
	}
	s := &Service{
		opt:      opt,
		limit:    newLimiter(opt.SlotRate, opt.SlotBurst),
		sign:     newSigner(opt.Key),
		base:     strings.TrimRight(opt.PublicURL, "/"),
		log:      opt.Logger,
		now:      opt.Now,
		previews: thumbnail.NewMaker(PreviewMaxSide, previewsKept, previewWait),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.direct, _ = opt.Store.(store.Presigner)
	if s.direct != nil && s.opt.Download.Mode == "" {
		s.opt.Download.Mode = Redirect
	}
	if s.direct != nil && s.opt.Download.Mode == Public {
		// mediaslot cannot vouch for what the bucket's origin serves: the
		// object's type is the uploader's, and no disposition is forced.
		s.log.Warn("download = \"public\" serves uploads from the bucket's origin with the type the uploader chose, so HTML and SVG files run script there; "+
			"have the bucket or CDN add Content-Disposition: attachment (docs/S3.md), or use redirect or proxy", "public_url", s.opt.Download.PublicURL)
	}
	if s.opt.Download.URLLifetime <= 0 {
		s.opt.Download.URLLifetime = time.Minute
	}
	return s, nil
}

// MaxFileSize is the limit to advertise in service discovery.
func (s *Service) MaxFileSize() int64 { return s.opt.MaxFileSize }

// Issue checks r against the policy and, if it passes, records and returns a
// new slot. Refusals are *refusal.Error errors; anything else is an internal failure.
func (s *Service) Issue(ctx context.Context, r Request) (Slot, error) {
	if ref := s.opt.Policy.check(r); ref != nil {
		return Slot{}, ref
	}
	now := s.now()
	if ok, next := s.limit.take(r.Owner, now); !ok {
		return Slot{}, &refusal.Error{Kind: refusal.OverQuota, RetryAt: next,
			Text: fmt.Sprintf("Too many upload requests; try again in %d seconds", int(next.Sub(now).Seconds())+1)}
	}
	deleteAfter, ref := s.opt.Policy.deleteAfter(r, now)
	if ref != nil {
		return Slot{}, ref
	}
	if err := s.health.err(); err != nil {
		return Slot{}, refusal.New(refusal.Unavailable, "The file store is unavailable; try again later")
	}
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixMilli())<<16) // 48 bits of time
	_, _ = rand.Read(raw[6:])
	id := hex.EncodeToString(raw[:])
	// Whole seconds: the expiry travels in the URL as Unix seconds.
	expires := now.Add(s.opt.SlotLifetime).Truncate(time.Second)
	rec := record{
		Owner:       r.Owner,
		Filename:    r.Filename,
		Size:        r.Size,
		ContentType: r.ContentType,
		Purpose:     string(r.Purpose),
		Issued:      now,
		Expires:     expires,
		DeleteAfter: deleteAfter,
	}
	// The record and the quota check in one step of the store: two
	// requests that race never both pass a quota only one fits. The bbolt
	// store answers before the record's commit (docs/OPERATIONS.md).
	over, err := s.opt.Records.Issue(ctx, id, rec, s.holdUntil(expires), s.quotas(), now)
	if err != nil {
		s.log.Error("recording slot", "err", err)
		return Slot{}, refusal.New(refusal.Unavailable, "The upload service cannot record slots right now; try again later")
	}
	if over != nil {
		return Slot{}, s.overRefusal(over, r.Owner, r.Size, now)
	}
	name := url.PathEscape(r.Filename)
	slot := Slot{ID: id, GetURL: s.base + "/file/" + id + "/" + name, Expires: expires}
	if s.direct != nil {
		u, hdr, err := s.direct.PresignPut(ctx, id, r.Size, r.ContentType, s.opt.SlotLifetime)
		if err != nil {
			// the client never gets the URL
			if err := s.opt.Records.Forget(context.WithoutCancel(ctx), id); err != nil {
				s.log.Error("forgetting a slot not handed out", "slot", id, "err", err)
			}
			s.log.Error("presigning upload", "err", err)
			return Slot{}, refusal.New(refusal.Unavailable, "The file store is unavailable; try again later")
		}
		slot.PutURL, slot.PutHeaders = u, slotHeaders(hdr)
		return slot, nil
	}
	q := url.Values{
		"e": {strconv.FormatInt(expires.Unix(), 10)},
		"t": {s.sign.token(id, r.Size, r.ContentType, expires)},
	}
	slot.PutURL = s.base + "/upload/" + id + "/" + name + "?" + q.Encode()
	return slot, nil
}

// slotHeaders keeps the headers XEP-0363 lets a slot carry. Clients drop or
// refuse others (Gajim refuses the whole slot), and send Content-Type anyway.
func slotHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for _, name := range []string{"Authorization", "Cookie", "Expires"} {
		if v := h.Get(name); v != "" && !strings.ContainsAny(v, "\r\n") {
			out[name] = v
		}
	}
	return out
}

// validID reports whether id looks like one Issue makes (32 lower-case hex digits).
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// record is what the slot store keeps of a slot.
type record = slotstore.Record

// errNoSlot is the slot store's answer for a slot it does not have.
var errNoSlot = slotstore.ErrNotFound

// lookup reads a slot's record.
func (s *Service) lookup(ctx context.Context, id string) (record, error) {
	return s.opt.Records.Lookup(ctx, id)
}

// startUpload checks a PUT against the quotas again, since they may have
// been lowered or the slot's hold may have ended, and keeps its hold while
// the upload runs. A slot over a quota loses its hold; the client may try
// again when the refusal says. Unless it refuses or fails, the caller must
// call endUpload.
func (s *Service) startUpload(ctx context.Context, id string, rec record, now time.Time) (*refusal.Error, error) {
	over, err := s.opt.Records.StartUpload(ctx, id, s.quotas(), now)
	if over != nil {
		return s.overRefusal(over, rec.Owner, rec.Size, now), nil
	}
	return nil, err
}

// endUpload lets an upload's hold end with its window again (if the upload
// failed; a completed one has already been settled).
func (s *Service) endUpload(ctx context.Context, id string) {
	if err := s.opt.Records.EndUpload(context.WithoutCancel(ctx), id, s.now()); err != nil {
		s.log.Error("ending an upload's hold", "slot", id, "err", err)
	}
}

// complete records a stored upload as complete, turning its hold into
// usage, durably (the caller acknowledges the upload next). It reports
// whether the slot was complete already.
func (s *Service) complete(ctx context.Context, id, served string) (record, bool, error) {
	return s.opt.Records.Complete(context.WithoutCancel(ctx), id, s.now(), served)
}
