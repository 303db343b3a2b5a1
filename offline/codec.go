package offline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// An entry value is a small binary record rather than JSON because it is
// written and read once per queued stanza, and its stanza is raw bytes:
//
//	version   1 byte, entryVersion
//	accepted  8 bytes, Unix nanoseconds, big-endian int64
//	sender    2-byte big-endian length, then the bytes
//	stanza    4-byte big-endian length, then the bytes
//
// Lengths are fixed-width so that every valid record has exactly one
// encoding, and nothing may follow the stanza: a truncated or padded value
// is an error, not a shorter or longer stanza. The recipient and sequence
// number live in the key, not here.
const (
	entryVersion = 1
	acceptedOff  = 1 // offset of the accepted time, stamped in place by Enqueue
	entryHeader  = 1 + 8 + 2 + 4
)

var errCorrupt = errors.New("offline: corrupt entry")

// encodeEntry returns the value stored for e. Recipient and Seq are not
// part of it. Accepted must lie within the years 1678 to 2262, the range of
// int64 Unix nanoseconds.
func encodeEntry(e Entry) ([]byte, error) {
	if len(e.Sender) > MaxSender {
		return nil, fmt.Errorf("offline: sender is %d bytes, more than %d", len(e.Sender), MaxSender)
	}
	if uint64(len(e.Stanza)) > MaxStanza {
		return nil, fmt.Errorf("offline: stanza is %d bytes, more than %d", len(e.Stanza), uint64(MaxStanza))
	}
	b := make([]byte, 0, entryHeader+len(e.Sender)+len(e.Stanza))
	b = append(b, entryVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Accepted.UnixNano()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Sender)))
	b = append(b, e.Sender...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Stanza)))
	b = append(b, e.Stanza...)
	return b, nil
}

// stampAccepted overwrites the accepted time of an encoded entry.
func stampAccepted(v []byte, t time.Time) {
	binary.BigEndian.PutUint64(v[acceptedOff:], uint64(t.UnixNano()))
}

// decodeEntry parses a value written by encodeEntry. The result does not
// alias b, which bbolt only keeps valid for the life of its transaction.
func decodeEntry(b []byte) (Entry, error) {
	if len(b) < entryHeader {
		return Entry{}, fmt.Errorf("%w: %d bytes is too short", errCorrupt, len(b))
	}
	if b[0] != entryVersion {
		return Entry{}, fmt.Errorf("%w: unknown version %d", errCorrupt, b[0])
	}
	accepted := time.Unix(0, int64(binary.BigEndian.Uint64(b[acceptedOff:])))
	rest := b[acceptedOff+8:]
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < n+4 {
		return Entry{}, fmt.Errorf("%w: sender truncated", errCorrupt)
	}
	sender := string(rest[:n])
	rest = rest[n:]
	m := uint64(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if uint64(len(rest)) != m {
		return Entry{}, fmt.Errorf("%w: stanza is %d bytes, header says %d", errCorrupt, len(rest), m)
	}
	return Entry{
		Sender:   sender,
		Accepted: accepted,
		Stanza:   append([]byte(nil), rest...),
	}, nil
}
