package offline

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// ExportStanzas reads a queue in batches of at most n stanzas and about
// exportBatchBytes of them, each with the recipients still holding it and
// whether they were never seen, and resumes after the last Seq it gave:
// together the batches are every stanza once, in Seq order.
func TestExportStanzasBatches(t *testing.T) {
	q := newQueue(t, NoLimits)
	ctx := context.Background()
	if err := q.MarkSeen(ctx, "bob@example.net"); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", exportBatchBytes/3+1)
	enqueue(t, q, "alice@example.net", "<a/>", "bob@example.net", "carol@example.net")
	for range 4 {
		enqueue(t, q, "alice@example.net", big, "bob@example.net")
	}
	enqueue(t, q, "alice@example.net", "<b/>", "carol@example.net", "dave@example.net")
	drainAll(t, q, "dave@example.net")
	if err := q.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	var got []Stored
	for n, want := range map[int][]int{2: {2, 2, 2}, 10: {4, 2}} { // 10: the third big stanza fills a batch
		var batches []int
		var after uint64
		got = got[:0]
		for range 10 {
			b, err := ExportStanzas(q.db, after, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 {
				break
			}
			batches = append(batches, len(b))
			got = append(got, b...)
			after = b[len(b)-1].Seq
		}
		if !slices.Equal(batches, want) {
			t.Errorf("at most %d a batch: batches of %v stanzas, want %v", n, batches, want)
		}
	}
	if len(got) != 6 {
		t.Fatalf("%d stanzas", len(got))
	}
	for i, s := range got {
		if s.Seq != uint64(i+1) || s.Sender != "alice@example.net" || s.Accepted.IsZero() {
			t.Errorf("stanza %d: %d %s %v", i, s.Seq, s.Sender, s.Accepted)
		}
	}
	if first := got[0]; string(first.Stanza) != "<a/>" || !slices.Equal(first.Recipients, []string{"bob@example.net", "carol@example.net"}) ||
		!slices.Equal(first.Unseen, []bool{false, true}) {
		t.Errorf("the group stanza: %q %v %v", first.Stanza, first.Recipients, first.Unseen)
	}
	if last := got[5]; string(last.Stanza) != "<b/>" || !slices.Equal(last.Recipients, []string{"carol@example.net"}) {
		t.Errorf("the stanza delivered to dave: %q held by %v", last.Stanza, last.Recipients)
	}
	if seq, err := LastSeq(q.db); err != nil || seq != 6 {
		t.Errorf("last seq %d %v", seq, err)
	}
	seen, err := ExportSeen(q.db, "", 10)
	if err != nil || len(seen) != 1 || seen[0].Recipient != "bob@example.net" || seen[0].At.IsZero() {
		t.Errorf("seen %+v %v", seen, err)
	}
}
