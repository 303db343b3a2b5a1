package boltslots

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Slot records are written with json.Marshal. The byte strings below were
// written by the hand-written encoder that came before it (issue 14), for
// the same records: data files from before read the same, and new records
// are the same bytes, so a downgrade reads them too.
func TestRecordEncoding(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 123456789, time.UTC)
	cases := []struct {
		rec record
		old string
	}{
		{
			record{Owner: "alice@example.net", Filename: "IMG_20261125_080000.jpg", Size: 2345678, ContentType: "image/jpeg",
				Issued: t0, Expires: t0.Add(5 * time.Minute).Truncate(time.Second)},
			`{"o":"alice@example.net","f":"IMG_20261125_080000.jpg","s":2345678,"c":"image/jpeg","i":"2026-11-25T08:00:00.123456789Z","e":"2026-11-25T08:05:00Z"}`,
		},
		{
			// every field, escapes and an offset
			record{Owner: "bob@example.org", Filename: "cat <1> & \"dog\"\\\u2028\x01.png", Purpose: "message",
				Issued: t0, Expires: t0, DeleteAfter: t0.Add(720 * time.Hour).In(time.FixedZone("x", 3600)),
				Complete: true, Stored: t0.Add(time.Minute), StoredType: "application/octet-stream"},
			`{"o":"bob@example.org","f":"cat \u003c1\u003e \u0026 \"dog\"\\\u2028\u0001.png","s":0,"p":"message","i":"2026-11-25T08:00:00.123456789Z","e":"2026-11-25T08:00:00.123456789Z","x":"2026-12-25T09:00:00.123456789+01:00","d":true,"u":"2026-11-25T08:01:00.123456789Z","t":"application/octet-stream"}`,
		},
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, c := range cases {
		var old record
		if err := json.Unmarshal([]byte(c.old), &old); err != nil {
			t.Fatalf("case %d: an old record does not decode: %v", i, err)
		}
		if !sameRecord(old, c.rec) {
			t.Errorf("case %d: old record decodes to\n%+v\nwant\n%+v", i, old, c.rec)
		}
		var raw []byte
		var back record
		if err := db.Update(func(tx *bolt.Tx) error {
			if _, err := tx.CreateBucketIfNotExists(bucketSlots); err != nil {
				return err
			}
			if err := putRecord(tx, "id", c.rec); err != nil {
				return err
			}
			raw = append(raw, tx.Bucket(bucketSlots).Get([]byte("id"))...)
			back, err = getRecord(tx, "id")
			return err
		}); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if string(raw) != c.old {
			t.Errorf("case %d: written\n%s\nold encoder wrote\n%s", i, raw, c.old)
		}
		if !sameRecord(back, c.rec) {
			t.Errorf("case %d: record reads back as\n%+v\nwant\n%+v", i, back, c.rec)
		}
	}
	// A time json cannot write is an error, not a record that does not read back.
	if err := db.Update(func(tx *bolt.Tx) error {
		return putRecord(tx, "bad", record{Issued: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	}); err == nil {
		t.Error("a record with the year 10000 was written")
	}
}

// sameRecord compares times as instants with their offset, since decoding
// gives a different *time.Location for the same zone.
func sameRecord(a, b record) bool {
	sameTime := func(x, y time.Time) bool {
		_, ox := x.Zone()
		_, oy := y.Zone()
		return x.Equal(y) && ox == oy
	}
	return sameTime(a.Issued, b.Issued) && sameTime(a.Expires, b.Expires) &&
		sameTime(a.DeleteAfter, b.DeleteAfter) && sameTime(a.Stored, b.Stored) &&
		a.Owner == b.Owner && a.Filename == b.Filename && a.Size == b.Size &&
		a.ContentType == b.ContentType && a.Purpose == b.Purpose &&
		a.Complete == b.Complete && a.StoredType == b.StoredType
}
