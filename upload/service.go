// Package upload issues upload slots and serves the uploads and downloads of
// the embedded disk store.
//
// A slot is a random 128-bit id with a record in bbolt (owner, name, size,
// type, expiry, state). Its PUT URL carries the authorisation itself, an HMAC
// token over the slot's facts and expiry, because many clients drop the
// headers a slot asks for. Its GET URL is stable and unsigned but unguessable,
// so it keeps working in message archives and offline deliveries. The package
// knows nothing of XMPP: the xmpp package turns stanzas into Requests.
package upload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/groupcommit"
	"mediaslot/store"
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
	DB         *bolt.DB
	Writer     *groupcommit.Writer // commits to DB; shared with other users of DB
	Store      store.Store
	Key        []byte // HMAC key for PUT URLs
	PublicURL  string // base URL of the HTTP front, as clients reach it
	CORSOrigin []string
	Logger     *slog.Logger
	Now        func() time.Time // for tests; time.Now if nil
}

// Service issues slots and serves the HTTP side of the disk store.
type Service struct {
	opt    Options
	sign   signer
	base   string
	log    *slog.Logger
	now    func() time.Time
	active sync.Map // slot ids with a PUT in progress
}

// New returns a Service. The bbolt bucket is created if needed.
func New(opt Options) (*Service, error) {
	if err := opt.DB.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketSlots)
		return err
	}); err != nil {
		return nil, err
	}
	s := &Service{
		opt:  opt,
		sign: signer{key: opt.Key},
		base: strings.TrimRight(opt.PublicURL, "/"),
		log:  opt.Logger,
		now:  opt.Now,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// MaxFileSize is the limit to advertise in service discovery.
func (s *Service) MaxFileSize() int64 { return s.opt.MaxFileSize }

// Issue checks r against the policy and, if it passes, records and returns a
// new slot. Refusals are *Refusal errors; anything else is an internal failure.
func (s *Service) Issue(ctx context.Context, r Request) (Slot, error) {
	if ref := s.opt.Policy.check(r); ref != nil {
		return Slot{}, ref
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	now := s.now()
	// Whole seconds: the expiry travels in the URL as Unix seconds.
	expires := now.Add(s.opt.SlotLifetime).Truncate(time.Second)
	rec := record{
		Owner:       r.Owner,
		Filename:    r.Filename,
		Size:        r.Size,
		ContentType: r.ContentType,
		Issued:      now,
		Expires:     expires,
	}
	if err := s.opt.Writer.Update(ctx, func(tx *bolt.Tx) error { return putRecord(tx, id, rec) }); err != nil {
		s.log.Error("recording slot", "err", err)
		return Slot{}, refuse(Unavailable, "The upload service cannot record slots right now; try again later")
	}
	name := url.PathEscape(r.Filename)
	q := url.Values{
		"e": {strconv.FormatInt(expires.Unix(), 10)},
		"t": {s.sign.token(id, r.Size, r.ContentType, expires)},
	}
	return Slot{
		ID:      id,
		PutURL:  s.base + "/upload/" + id + "/" + name + "?" + q.Encode(),
		GetURL:  s.base + "/file/" + id + "/" + name,
		Expires: expires,
	}, nil
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

func (s *Service) lookup(id string) (record, error) {
	var r record
	err := s.opt.DB.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getRecord(tx, id)
		return err
	})
	return r, err
}
