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
//	  totals                 entries | stanzas | bytes | recipients | unseen entries | unseen bytes (6 × uint64)
//	  s/ id                  the stanza record (codec.go): sender, accepted, stanza
//	  q/ len(r) r id         empty: r has stanza id queued
//	  h/ id r                empty: the same, by stanza
//	  t/ accepted id         holders | size (2 × uint64), then the sender's account
//	  n/ r                   entries | bytes (2 × uint64); absent when r has none
//	  f/ account             entries | bytes of what account has queued; absent when nothing
//	  p/ len(r) r account    entries | bytes of what account has queued for r; absent when nothing
//	  g/ account             entries | bytes of what account has queued for recipients not in o
//	  o/ r                   accepted-style time (uint64): r was seen online (MarkSeen)
//	  u/ accepted id r       empty: r had not been seen when stanza id was queued for it
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
// it deletes, counts the holders, so the last delivery deletes the
// stanza, and names the sender, so every removal finds the sender's
// counters without reading the stanza. n, f and p make the checks of the
// caps and Pending one lookup each, and totals makes Stats constant-time.
// f counts each stanza's bytes once, n and p once per entry.
//
// o is the set of recipients ever seen; the totals' unseen counters sum n
// over the recipients not in it, and g sums p over them by sender. u orders by time the entries queued for
// recipients not yet seen, so Purge finds those past the short UnseenTTL
// without reading the rest. A key of u whose recipient was seen since
// stays until Purge reaches it or the entry goes: MarkSeen does not look
// for them.
//
// Files written before f, g, p, o and u existed have t values without a
// sender, 16 bytes long: those stanzas were never counted by sender, and
// removing them leaves f, g and p alone. Open marks their recipients seen.
//
// All of these change together in one transaction: no state between them
// is ever visible or durable.
var (
	bucketOffline  = []byte("offline")
	bucketStanzas  = []byte("s")
	bucketQueue    = []byte("q")
	bucketHolders  = []byte("h")
	bucketByTime   = []byte("t")
	bucketCounts   = []byte("n")
	bucketSenders  = []byte("f")
	bucketShares   = []byte("p")
	bucketUnseenBy = []byte("g")
	bucketSeen     = []byte("o")
	bucketUnseen   = []byte("u")
	keyTotals      = []byte("totals")
)

// recipientPrefix returns the part of a q key that names r. MaxRecipient
// is well within bbolt's limit on key size.
func recipientPrefix(r string) ([]byte, error) {
	if err := CheckRecipient(r); err != nil {
		return nil, err
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

func unseenKey(accepted time.Time, id uint64, r string) []byte {
	return append(timeKey(accepted, id), r...)
}

// shareKey is the key in p of what account has queued for the recipient
// of prefix.
func shareKey(prefix []byte, account string) []byte {
	return append(prefix[:len(prefix):len(prefix)], account...)
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

func (c counter) exported() Counter { return Counter{c.entries, c.bytes} }

type totals struct {
	entries    uint64 // one per recipient of each stanza
	stanzas    uint64
	bytes      uint64 // of stanzas, each counted once
	recipients uint64
	// unseenEntries and unseenBytes sum the counters of n of recipients
	// not in o.
	unseenEntries, unseenBytes uint64
}

// buckets are the queue's buckets within one transaction.
type buckets struct {
	root, stanzas, queue, holders, byTime, counts, senders, shares, seen, unseen, unseenBy *bolt.Bucket
}

func openBuckets(tx *bolt.Tx) (buckets, error) {
	root := tx.Bucket(bucketOffline)
	if root == nil {
		return buckets{}, errors.New("offline: bucket missing; was the queue opened?")
	}
	return buckets{
		root:     root,
		stanzas:  root.Bucket(bucketStanzas),
		queue:    root.Bucket(bucketQueue),
		holders:  root.Bucket(bucketHolders),
		byTime:   root.Bucket(bucketByTime),
		counts:   root.Bucket(bucketCounts),
		senders:  root.Bucket(bucketSenders),
		shares:   root.Bucket(bucketShares),
		seen:     root.Bucket(bucketSeen),
		unseen:   root.Bucket(bucketUnseen),
		unseenBy: root.Bucket(bucketUnseenBy),
	}, nil
}

// counter reads a counter of n, f or p; a missing one is zero.
func (b buckets) counter(bucket *bolt.Bucket, k []byte) counter {
	v := bucket.Get(k)
	if len(v) != 16 {
		return counter{}
	}
	return counter{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}
}

// add adds entries and bytes to a counter of f, g or p (negative: subtracts),
// deleting it when it reaches zero. Going below zero is an inconsistency,
// reported as such.
func (b buckets) add(bucket *bolt.Bucket, k []byte, entries, bytes int64) error {
	c := b.counter(bucket, k)
	if (entries < 0 && c.entries < uint64(-entries)) || (bytes < 0 && c.bytes < uint64(-bytes)) {
		return fmt.Errorf("offline: counter %q is inconsistent", k)
	}
	c.entries += uint64(entries)
	c.bytes += uint64(bytes)
	if c == (counter{}) {
		return bucket.Delete(k)
	}
	return bucket.Put(k, uint64s(c.entries, c.bytes))
}

func (b buckets) count(r string) counter {
	return b.counter(b.counts, []byte(r))
}

func (b buckets) setCount(r string, c counter) error {
	if c.entries == 0 {
		return b.counts.Delete([]byte(r))
	}
	return b.counts.Put([]byte(r), uint64s(c.entries, c.bytes))
}

func (b buckets) totals() totals {
	v := b.root.Get(keyTotals)
	if len(v) != 32 && len(v) != 48 { // 32: before the unseen counters
		return totals{}
	}
	u := func(i int) uint64 {
		if 8*i >= len(v) {
			return 0
		}
		return binary.BigEndian.Uint64(v[8*i:])
	}
	return totals{entries: u(0), stanzas: u(1), bytes: u(2), recipients: u(3), unseenEntries: u(4), unseenBytes: u(5)}
}

func (b buckets) setTotals(t totals) error {
	return b.root.Put(keyTotals, uint64s(t.entries, t.stanzas, t.bytes, t.recipients, t.unseenEntries, t.unseenBytes))
}

func (b buckets) isSeen(r string) bool {
	return has(b.seen, []byte(r))
}

// markSeen adds r to the seen set, and takes its entries off the unseen
// counters, its own and its senders'.
func (b buckets) markSeen(r string, now time.Time) error {
	if b.isSeen(r) {
		return nil
	}
	if err := b.seen.Put([]byte(r), uint64s(uint64(now.UnixNano()))); err != nil {
		return err
	}
	c := b.count(r)
	if c.entries == 0 {
		return nil
	}
	prefix, err := recipientPrefix(r)
	if err != nil {
		return err
	}
	// Collected first, as writing under a cursor can skip keys.
	type share struct {
		account []byte
		c       counter
	}
	var shares []share
	pc := b.shares.Cursor()
	for k, v := pc.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = pc.Next() {
		shares = append(shares, share{bytes.Clone(k[len(prefix):]), counter{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}})
	}
	for _, sh := range shares {
		if err := b.add(b.unseenBy, sh.account, -int64(sh.c.entries), -int64(sh.c.bytes)); err != nil {
			return err
		}
	}
	tot := b.totals()
	if tot.unseenEntries < c.entries || tot.unseenBytes < c.bytes {
		return fmt.Errorf("offline: unseen counters are inconsistent with those of %s", r)
	}
	tot.unseenEntries -= c.entries
	tot.unseenBytes -= c.bytes
	return b.setTotals(tot)
}

// addStanza stores an encoded stanza record under id, from account, for
// holders recipients.
func (b buckets) addStanza(tot *totals, id uint64, value []byte, accepted time.Time, size uint64, holders int, account string) error {
	if err := b.stanzas.Put(idKey(id), value); err != nil {
		return err
	}
	tot.stanzas++
	tot.bytes += size
	if err := b.add(b.senders, []byte(account), int64(holders), int64(size)); err != nil {
		return err
	}
	return b.byTime.Put(timeKey(accepted, id), append(uint64s(uint64(holders), size), account...))
}

// addEntry queues stanza id, of size bytes, accepted at accepted from
// account, for r, who was seen or not.
func (b buckets) addEntry(tot *totals, r string, prefix []byte, id uint64, accepted time.Time, size uint64, account string, seen bool) error {
	if err := b.queue.Put(queueKey(prefix, id), []byte{}); err != nil {
		return err
	}
	if err := b.holders.Put(holderKey(id, r), []byte{}); err != nil {
		return err
	}
	if err := b.add(b.shares, shareKey(prefix, account), 1, int64(size)); err != nil {
		return err
	}
	if !seen {
		if err := b.unseen.Put(unseenKey(accepted, id, r), []byte{}); err != nil {
			return err
		}
		if err := b.add(b.unseenBy, []byte(account), 1, int64(size)); err != nil {
			return err
		}
		tot.unseenEntries++
		tot.unseenBytes += size
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
	if len(tv) < 16 || !has(b.holders, hk) {
		return nil
	}
	holders, size := binary.BigEndian.Uint64(tv), binary.BigEndian.Uint64(tv[8:])
	// A 16-byte value is from before senders were counted (see above).
	account, counted := string(tv[16:]), len(tv) > 16
	if err := b.holders.Delete(hk); err != nil {
		return err
	}
	if err := b.queue.Delete(queueKey(prefix, id)); err != nil {
		return err
	}
	if err := b.unseen.Delete(unseenKey(accepted, id, r)); err != nil {
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
	if !b.isSeen(r) {
		if tot.unseenEntries < 1 || tot.unseenBytes < size {
			return fmt.Errorf("offline: unseen counters are inconsistent with those of %s", r)
		}
		tot.unseenEntries--
		tot.unseenBytes -= size
	}
	if err := b.setCount(r, counter{c.entries - 1, c.bytes - size}); err != nil {
		return err
	}
	last := holders == 1
	if counted {
		if err := b.add(b.shares, shareKey(prefix, account), -1, -int64(size)); err != nil {
			return err
		}
		if !b.isSeen(r) {
			if err := b.add(b.unseenBy, []byte(account), -1, -int64(size)); err != nil {
				return err
			}
		}
		freed := int64(0)
		if last {
			freed = -int64(size)
		}
		if err := b.add(b.senders, []byte(account), -1, freed); err != nil {
			return err
		}
	}
	if !last {
		return b.byTime.Put(tk, append(uint64s(holders-1, size), tv[16:]...))
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
