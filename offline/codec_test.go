package offline

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeEntry checks two properties of the entry codec: an entry built
// from sender, accepted and stanza survives encode and decode unchanged;
// and decoding arbitrary bytes never panics, and whatever it accepts
// encodes back to exactly those bytes (one encoding per entry, so nothing
// truncated or padded slips through).
func FuzzDecodeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, sender string, accepted int64, stanza, raw []byte) {
		in := Entry{Sender: sender, Accepted: time.Unix(0, accepted), Stanza: stanza}
		switch v, err := encodeEntry(in); {
		case len(sender) > MaxSender:
			if err == nil {
				t.Fatalf("encoded a %d-byte sender", len(sender))
			}
		case err != nil:
			t.Fatalf("encode: %v", err)
		default:
			out, err := decodeEntry(v)
			if err != nil {
				t.Fatalf("decode(encode(e)): %v", err)
			}
			if out.Sender != in.Sender || !out.Accepted.Equal(in.Accepted) || !bytes.Equal(out.Stanza, in.Stanza) {
				t.Fatalf("round trip: got %+v, want %+v", out, in)
			}
		}

		e, err := decodeEntry(raw)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decode error %v is not errCorrupt", err)
			}
			return
		}
		back, err := encodeEntry(e)
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("decode accepted %q but encodes back to %q, %v", raw, back, err)
		}
	})
}

func TestDecodeEntryRejectsDamage(t *testing.T) {
	v, err := encodeEntry(Entry{Sender: "alice@example.org/phone", Accepted: time.Unix(1700000000, 5), Stanza: []byte("<message/>")})
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(v) {
		if _, err := decodeEntry(v[:i]); err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", i, len(v))
		}
	}
	if _, err := decodeEntry(append(v[:len(v):len(v)], 0)); err == nil {
		t.Error("trailing byte: no error")
	}
	bad := bytes.Clone(v)
	bad[0] = entryVersion + 1
	if _, err := decodeEntry(bad); err == nil {
		t.Error("unknown version: no error")
	}
}

func TestEncodeEntryRefusesLongSender(t *testing.T) {
	if _, err := encodeEntry(Entry{Sender: string(make([]byte, MaxSender+1))}); err == nil {
		t.Fatal("no error for a sender over 65535 bytes")
	}
}
