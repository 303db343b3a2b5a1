package boltslots

import (
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/upload/slotstore"
)

// ExportDaily sums the entries of earlier versions (one an upload, keyed
// by its exact time and slot id) by owner and minute, as DailyStamp counts
// them now, and never splits an owner's minute between two batches: a
// move resumed after any batch writes each minute once, in full.
func TestExportDailySumsByMinute(t *testing.T) {
	_, db := open(t, "")
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDaily)
		for i, e := range []struct {
			owner string
			at    time.Duration
			id    string
		}{
			{"alice@example.net", 10 * time.Second, "a"}, // earlier versions: one an upload
			{"alice@example.net", 50 * time.Second, "b"},
			{"alice@example.net", 50 * time.Second, "c"},
			{"alice@example.net", 2 * time.Minute, ""}, // this version: one a minute
			{"alice@example.net", 2*time.Minute + time.Second, "d"},
			{"bob@example.net", 10 * time.Second, "e"},
		} {
			if err := b.Put(ownerKey(e.owner, uint64(t0.Add(e.at).UnixNano()), e.id), sizeValue(int64(100*(i+1)))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []slotstore.DailyUploads{
		{Owner: "alice@example.net", Stamp: t0.Add(time.Minute), Bytes: 100 + 200 + 300},
		{Owner: "alice@example.net", Stamp: t0.Add(2 * time.Minute), Bytes: 400},
		{Owner: "alice@example.net", Stamp: t0.Add(3 * time.Minute), Bytes: 500},
		{Owner: "bob@example.net", Stamp: t0.Add(time.Minute), Bytes: 600},
	}
	for n := 1; n <= len(want)+1; n++ {
		var got []slotstore.DailyUploads
		var after []byte
		for range 10 {
			rows, last, err := ExportDaily(db, after, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) > n {
				t.Fatalf("batch of %d: %d rows", n, len(rows))
			}
			if len(rows) == 0 {
				break
			}
			got, after = append(got, rows...), last
		}
		if !slices.EqualFunc(got, want, func(a, b slotstore.DailyUploads) bool {
			return a.Owner == b.Owner && a.Stamp.Equal(b.Stamp) && a.Bytes == b.Bytes
		}) {
			t.Errorf("batches of %d: %+v, want %+v", n, got, want)
		}
	}
}
