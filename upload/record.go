package upload

import (
	"encoding/json"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketSlots holds one record per issued slot, keyed by slot id.
var bucketSlots = []byte("slots")

// record is what mediaslot remembers of a slot, from issue to expiry.
type record struct {
	Owner       string    `json:"o"`           // bare JID that requested the slot
	Filename    string    `json:"f"`           // as requested, unescaped
	Size        int64     `json:"s"`           // exact byte count the PUT must send
	ContentType string    `json:"c,omitempty"` // as declared in the request; "" if none
	Issued      time.Time `json:"i"`
	Expires     time.Time `json:"e"`           // end of the PUT window
	Complete    bool      `json:"d,omitempty"` // the bytes are stored
	Stored      time.Time `json:"u,omitzero"`  // when the PUT completed
	StoredType  string    `json:"t,omitempty"` // content type served on GET
}

var errNoSlot = errors.New("no such slot")

func getRecord(tx *bolt.Tx, id string) (record, error) {
	var r record
	b := tx.Bucket(bucketSlots)
	if b == nil {
		return r, errNoSlot
	}
	v := b.Get([]byte(id))
	if v == nil {
		return r, errNoSlot
	}
	return decodeRecord(v)
}

func decodeRecord(v []byte) (record, error) {
	var r record
	err := json.Unmarshal(v, &r)
	return r, err
}

func putRecord(tx *bolt.Tx, id string, r record) error {
	b, err := tx.CreateBucketIfNotExists(bucketSlots)
	if err != nil {
		return err
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put([]byte(id), v)
}
