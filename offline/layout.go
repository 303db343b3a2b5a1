package offline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Everything lives under the top-level bucket "offline", so the queue can
// share its bbolt file with the slot records and never touch them:
//
//	offline                  Sequence() is the last stanza id (Entry.Seq) issued
//	  totals                 entries | stanzas | bytes | recipients (4 × uint64)
//	  s/ id                  the stanza record (codec.go): sender, accepted, stanza
//	  q/ len(r) r id         empty: r has stanza id queued
//	  h/ id r                empty: the same, by stanza
//	  t/ accepted id         holders | size (2 × uint64)
//	  n/ r                   entries | bytes (2 × uint64); absent when r has none
//
// A stanza sent to many recipients (a group) is stored once in s, and each
// recipient holds it by a small key in q, so a group costs one copy, not
// one per member. Ids increase, so s is append-only: a commit writes new
// pages at the right edge instead of rewriting pages that hold other
// large stanzas, which is what made per-recipient copies five times more
// expensive to write.
//
// A q key is the recipient's length (uint16), the recipient, then the
// big-endian id, so one recipient's entries are adjacent and in order and
// Drain is a cursor range scan; the length prefix keeps one recipient from
// being a prefix of another. h finds who still holds a stanza when Purge
// removes it. t orders stanzas by acceptance time, so Purge reads only what
// it deletes, and counts the holders, so the last delivery deletes the
// stanza. n makes limit checks and Pending one lookup each, and totals
// makes Stats constant-time.
//
// All of these change together in one transaction: no state between them
// is ever visible or durable.
var (
	bucketOffline = []byte("offline")
	bucketStanzas = []byte("s")
	bucketQueue   = []byte("q")
	bucketHolders = []byte("h")
	bucketByTime  = []byte("t")
	bucketCounts  = []byte("n")
	keyTotals     = []byte("totals")
)

// maxRecipient is the longest a JID can be (RFC 7622), well within
// bbolt's limit on key size.
const maxRecipient = 3071

var errRecipient = fmt.Errorf("offline: recipient must be 1 to %d bytes", maxRecipient)

// recipientPrefix returns the part of a q key that names r.
func recipientPrefix(r string) ([]byte, error) {
	if r == "" || len(r) > maxRecipient {
		return nil, errRecipient
	}
	p := make([]byte, 0, 2+len(r)+8)
	p = binary.BigEndian.AppendUint16(p, uint16(len(r)))
	return append(p, r...), nil
}

// queueKey appends id to a recipient prefix, in a new slice.
func queueKey(prefix []byte, id uint64) []byte {
	k := make([]byte, len(prefix), len(prefix)+8)
	copy(k, prefix)
	return binary.BigEndian.AppendUint64(k, id)
}

func idKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, id)
}

func holderKey(id uint64, r string) []byte {
	return append(idKey(id), r...)
}

func timeKey(accepted time.Time, id uint64) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(accepted.UnixNano()))
	return binary.BigEndian.AppendUint64(k, id)
}

func uint64s(v ...uint64) []byte {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		b = binary.BigEndian.AppendUint64(b, x)
	}
	return b
}

// counter is one recipient's share of the queue.
type counter struct {
	entries, bytes uint64
}

type totals struct {
	entries    uint64 // one per recipient of each stanza
	stanzas    uint64
	bytes      uint64 // of stanzas, each counted once
	recipients uint64
}

// buckets are the queue's buckets within one transaction.
type buckets struct {
	root, stanzas, queue, holders, byTime, counts *bolt.Bucket
}

func openBuckets(tx *bolt.Tx) (buckets, error) {
	root := tx.Bucket(bucketOffline)
	if root == nil {
		return buckets{}, errors.New("offline: bucket missing; was the queue opened?")
	}
	return buckets{
		root:    root,
		stanzas: root.Bucket(bucketStanzas),
		queue:   root.Bucket(bucketQueue),
		holders: root.Bucket(bucketHolders),
		byTime:  root.Bucket(bucketByTime),
		counts:  root.Bucket(bucketCounts),
	}, nil
}

func (b buckets) count(r string) counter {
	v := b.counts.Get([]byte(r))
	if len(v) != 16 {
		return counter{}
	}
	return counter{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}
}

func (b buckets) setCount(r string, c counter) error {
	if c.entries == 0 {
		return b.counts.Delete([]byte(r))
	}
	return b.counts.Put([]byte(r), uint64s(c.entries, c.bytes))
}

func (b buckets) totals() totals {
	v := b.root.Get(keyTotals)
	if len(v) != 32 {
		return totals{}
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(v[8*i:]) }
	return totals{entries: u(0), stanzas: u(1), bytes: u(2), recipients: u(3)}
}

func (b buckets) setTotals(t totals) error {
	return b.root.Put(keyTotals, uint64s(t.entries, t.stanzas, t.bytes, t.recipients))
}

// addStanza stores an encoded stanza record under id for holders recipients.
func (b buckets) addStanza(tot *totals, id uint64, value []byte, accepted time.Time, size uint64, holders int) error {
	if err := b.stanzas.Put(idKey(id), value); err != nil {
		return err
	}
	tot.stanzas++
	tot.bytes += size
	return b.byTime.Put(timeKey(accepted, id), uint64s(uint64(holders), size))
}

// addEntry queues stanza id, of size bytes, for r.
func (b buckets) addEntry(tot *totals, r string, prefix []byte, id, size uint64) error {
	if err := b.queue.Put(queueKey(prefix, id), []byte{}); err != nil {
		return err
	}
	if err := b.holders.Put(holderKey(id, r), []byte{}); err != nil {
		return err
	}
	c := b.count(r)
	if c.entries == 0 {
		tot.recipients++
	}
	tot.entries++
	return b.setCount(r, counter{c.entries + 1, c.bytes + size})
}

// removeEntry takes stanza id off r's queue, and deletes the stanza when
// r was its last holder. An entry already gone (purged while it was being
// delivered) is left alone, so nothing is subtracted twice.
func (b buckets) removeEntry(tot *totals, r string, prefix []byte, id uint64, accepted time.Time) error {
	tk := timeKey(accepted, id)
	tv := b.byTime.Get(tk)
	hk := holderKey(id, r)
	if len(tv) != 16 || !has(b.holders, hk) {
		return nil
	}
	holders, size := binary.BigEndian.Uint64(tv), binary.BigEndian.Uint64(tv[8:])
	if err := b.holders.Delete(hk); err != nil {
		return err
	}
	if err := b.queue.Delete(queueKey(prefix, id)); err != nil {
		return err
	}
	c := b.count(r)
	if c.entries < 1 || c.bytes < size || holders < 1 {
		return fmt.Errorf("offline: counters of %s or stanza %d are inconsistent", r, id)
	}
	if c.entries == 1 {
		tot.recipients--
	}
	tot.entries--
	if err := b.setCount(r, counter{c.entries - 1, c.bytes - size}); err != nil {
		return err
	}
	if holders > 1 {
		return b.byTime.Put(tk, uint64s(holders-1, size))
	}
	tot.stanzas--
	tot.bytes -= size
	if err := b.byTime.Delete(tk); err != nil {
		return err
	}
	return b.stanzas.Delete(idKey(id))
}

// has reports whether bucket b holds key k. Unlike Get it does not depend
// on whether bbolt returns an empty value as nil.
func has(b *bolt.Bucket, k []byte) bool {
	found, _ := b.Cursor().Seek(k)
	return bytes.Equal(found, k)
}
