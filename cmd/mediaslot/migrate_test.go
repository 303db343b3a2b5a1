package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/dbfile"
	"mediaslot/internal/dbfile/dbfiletest"
	"mediaslot/internal/groupcommit"
	"mediaslot/internal/pgdb"
	"mediaslot/offline"
	"mediaslot/offline/pgqueue"
	"mediaslot/testserver"
	"mediaslot/upload/slotstore"
	"mediaslot/upload/slotstore/boltslots"
	"mediaslot/upload/slotstore/pgslots"
)

// fixture is what fillBolt put in a bbolt file through the real bbolt
// backends.
type fixture struct {
	now        time.Time
	ids        []string // every slot id issued, those gone included
	recipients []string // every recipient queued for, those drained included
	pendingID  string   // a slot still pending
	unseen     int      // entries of recipients never seen
}

var migrateOwners = []string{"alice@example.net", "bob@example.net", "carol@example.org"}

// fillBolt writes a bbolt file at path as mediaslot serve would: slots in
// every state (pending, complete with and without a deletion date,
// expired, forgotten) for owners of two domains, their uploads spread
// over hours of the daily quota, and a relay queue with a group stanza,
// recipients seen and never seen, one recipient drained.
func fillBolt(t *testing.T, path string) fixture {
	t.Helper()
	ctx := context.Background()
	opts := dbfile.Options()
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		t.Fatal(err)
	}
	w := groupcommit.New(db)
	slots, err := boltslots.Open(db, w, boltslots.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{now: time.Now().UTC().Truncate(time.Second)}
	for i := range 23 {
		id := fmt.Sprintf("%032x", 0x1900+i)
		f.ids = append(f.ids, id)
		at := f.now.Add(-time.Duration(i) * 17 * time.Minute)
		r := slotstore.Record{Owner: migrateOwners[i%3], Filename: fmt.Sprintf("f%d.jpg", i), Size: int64(1000 + 37*i),
			ContentType: "image/jpeg", Purpose: []string{"", "message", "profile"}[i%3], Issued: at, Expires: f.now.Add(time.Hour)}
		if i%4 != 3 {
			r.DeleteAfter = at.Add(time.Duration(24+i) * time.Hour)
		}
		if over, err := slots.Issue(ctx, id, r, r.Expires, slotstore.Quota{}, at); err != nil || over != nil {
			t.Fatal(over, err)
		}
		switch i % 6 {
		case 0, 1, 3, 4: // complete
			if _, _, err := slots.Complete(ctx, id, at.Add(time.Second), "image/jpeg"); err != nil {
				t.Fatal(err)
			}
		case 2: // pending
			f.pendingID = id
		}
	}
	if err := slots.Expire(ctx, f.ids[0], f.ids[4]); err != nil {
		t.Fatal(err)
	}
	if err := slots.Forget(ctx, f.ids[8]); err != nil {
		t.Fatal(err)
	}

	q, err := offline.Open(db, w, offline.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"bob@example.net", "dave@example.org"} {
		if err := q.MarkSeen(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	enqueue := func(from string, to ...string) {
		t.Helper()
		stanza := fmt.Appendf(nil, "<message from='%s'><body>%d</body></message>", from, len(to))
		if err := q.Enqueue(ctx, from, to, stanza); err != nil {
			t.Fatal(err)
		}
	}
	f.recipients = []string{"bob@example.net", "carol@example.org", "never@example.net", "alice@example.net"}
	for i := range 5 {
		enqueue(migrateOwners[i%3]+"/phone", "bob@example.net")
		enqueue("alice@example.net/laptop", "bob@example.net", "carol@example.org", "never@example.net")
		f.unseen++
		if i%2 == 0 {
			enqueue("carol@example.org", "alice@example.net", "never@example.net")
			f.unseen += 2
		}
	}
	if _, err := q.Drain(ctx, "carol@example.org", func(offline.Entry) error { return nil }, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// copyFile copies the file at src to a new file in a new directory.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "mediaslot.db")
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// boltEnds opens the slot store and queue of a bbolt file, as serve does.
func boltEnds(t *testing.T, path string, l offline.Limits) (*boltslots.Store, *offline.BoltQueue) {
	t.Helper()
	opts := dbfile.Options()
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		t.Fatal(err)
	}
	w := groupcommit.New(db)
	t.Cleanup(func() { w.Close(); db.Close() })
	s, err := boltslots.Open(db, w, boltslots.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := offline.Open(db, w, l)
	if err != nil {
		t.Fatal(err)
	}
	return s, q
}

// pgEnds opens the slot store and queue of a database, as serve does.
func pgEnds(t *testing.T, dsn string, l offline.Limits) (*pgslots.Store, *pgqueue.Queue, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	q, err := pgqueue.Open(context.Background(), pool, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(); pool.Close() })
	return pgslots.New(pool), q, pool
}

// drainAll drains recipient, delivering everything, and returns it.
func drainAll(t *testing.T, q offline.Queue, recipient string) []offline.Entry {
	t.Helper()
	var got []offline.Entry
	if _, err := q.Drain(context.Background(), recipient, func(e offline.Entry) error { got = append(got, e); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	return got
}

// sameEntries reports how want and got differ, with got's Seqs shifted
// back by offset.
func sameEntries(want, got []offline.Entry, offset uint64) error {
	if len(want) != len(got) {
		return fmt.Errorf("%d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Seq-offset != w.Seq || g.Sender != w.Sender || !g.Accepted.Equal(w.Accepted) || !bytes.Equal(g.Stanza, w.Stanza) || g.Recipient != w.Recipient {
			return fmt.Errorf("entry %d: %d %s %v %q, want %d %s %v %q", i, g.Seq, g.Sender, g.Accepted, g.Stanza, w.Seq, w.Sender, w.Accepted, w.Stanza)
		}
	}
	return nil
}

// sameRecord compares records, times by the instant.
func sameRecord(a, b slotstore.Record) bool {
	return a.Owner == b.Owner && a.Filename == b.Filename && a.Size == b.Size && a.ContentType == b.ContentType &&
		a.Purpose == b.Purpose && a.Issued.Equal(b.Issued) && a.Expires.Equal(b.Expires) && a.DeleteAfter.Equal(b.DeleteAfter) &&
		a.Complete == b.Complete && a.Stored.Equal(b.Stored) && a.StoredType == b.StoredType
}

// dump is every row of the tables of slot records and the relay queue,
// as text, in order: two databases that dump the same hold the same.
func dump(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"slots", "slot_usage", "slot_daily", "relay_state", "relay_stanzas", "relay_entries", "relay_recipients", "relay_senders", "relay_shares"} {
		var rows string
		if err := pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '') FROM `+table+` t`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:\n%s\n", table, rows)
	}
	return b.String()
}

// migrateCLI runs `mediaslot migrate-data` with args and returns its
// output.
func migrateCLI(t *testing.T, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if code := run(context.Background(), append([]string{"migrate-data"}, args...), &out, &errs); code != 0 {
		t.Fatalf("migrate-data %v: exit %d\n%s%s", args, code, out.String(), errs.String())
	}
	return out.String()
}

// The state of a bbolt file filled through the bbolt backends reads the
// same through the PostgreSQL backends after migrate-data: every record,
// the quotas' sums and refusals (usage, holds of pending slots, the daily
// uploads, when they free), the queue's totals and caps, and each
// recipient's entries in the same order with the same senders, times and
// bytes. The target is named by a configuration whose password comes from
// the environment, the source by its data.dir.
func TestMigrateData(t *testing.T) {
	pg := testserver.StartPostgres(t)
	dir := t.TempDir()
	cfg, path := dbConfig(t, dir)
	f := fillBolt(t, path)
	want := copyFile(t, path)
	dsn := pg.NewDB(t)
	conf, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	noPassword := strings.Replace(dsn, ":"+pg.Password+"@", "@", 1)
	conf = append(conf, fmt.Sprintf("backend = \"postgres\"\ndsn = %q\n", noPassword)...)
	if err := os.WriteFile(cfg, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MEDIASLOT_DATA_PASSWORD", pg.Password)
	out := migrateCLI(t, "--config", cfg, "--batch", "4")
	for _, w := range []string{"slot records: 20 moved, 0 found", "relay queue: 13 stanzas with 21 entries moved", "done: "} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	l := offline.Limits{MaxUnseenMessages: f.unseen + 1, SenderShare: 1}
	bs, bq := boltEnds(t, want, l)
	ps, pq, _ := pgEnds(t, dsn, l)
	ctx := context.Background()
	for _, id := range f.ids {
		br, berr := bs.Lookup(ctx, id)
		pr, perr := ps.Lookup(ctx, id)
		if !errors.Is(perr, berr) || !sameRecord(br, pr) {
			t.Errorf("slot %s: %+v %v in PostgreSQL, %+v %v in bbolt", id, pr, perr, br, berr)
		}
	}
	bn, _ := bs.StoredBytes(ctx)
	if pn, err := ps.StoredBytes(ctx); err != nil || pn != bn || bn == 0 {
		t.Errorf("stored bytes %d %v, %d in bbolt", pn, err, bn)
	}
	for _, owner := range migrateOwners {
		for _, q := range []slotstore.Quota{{Daily: 1}, {User: 1}, {Domain: 1}, {Total: 1}} {
			r := slotstore.Record{Owner: owner, Filename: "x", Size: 1, Issued: f.now, Expires: f.now.Add(time.Minute)}
			bo, berr := bs.Issue(ctx, "quota-probe", r, r.Expires, q, f.now)
			po, perr := ps.Issue(ctx, "quota-probe", r, r.Expires, q, f.now)
			if berr != nil || perr != nil || bo == nil || po == nil || bo.Scope != po.Scope || bo.Limit != po.Limit || bo.Used != po.Used || bo.Held != po.Held || !bo.Freed.Equal(po.Freed) {
				t.Errorf("%s %+v: over %+v %v in PostgreSQL, %+v %v in bbolt", owner, q, po, perr, bo, berr)
			}
		}
	}

	bst, _ := bq.Stats()
	if pst, err := pq.Stats(); err != nil || pst.Entries != bst.Entries || pst.Stanzas != bst.Stanzas || pst.Bytes != bst.Bytes ||
		pst.Recipients != bst.Recipients || !pst.Oldest.Equal(bst.Oldest) {
		t.Errorf("queue stats %+v %v, %+v in bbolt", pst, err, bst)
	}
	// the counters the caps read: the entries of recipients never seen
	// leave room for exactly one more
	for _, q := range []offline.Queue{bq, pq} {
		if err := q.Enqueue(ctx, "zed@example.net", []string{"nobody@example.net"}, []byte("<message/>")); err != nil {
			t.Errorf("%T: the last entry the unseen cap lets in: %v", q, err)
		}
		err := q.Enqueue(ctx, "zed@example.net", []string{"nobody@example.net"}, []byte("<message/>"))
		if le, ok := errors.AsType[*offline.LimitError](err); !ok || le.Scope != offline.UnseenScope {
			t.Errorf("%T: enqueue past the unseen cap: %v, want the unseen cap", q, err)
		}
	}
	for _, r := range f.recipients {
		if bq.Pending(r) != pq.Pending(r) {
			t.Errorf("%s pending: %v in PostgreSQL", r, pq.Pending(r))
		}
		if err := sameEntries(drainAll(t, bq, r), drainAll(t, pq, r), 0); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
}

// A move interrupted again and again, each run losing the batch it was
// writing (its context cancelled before the batch's progress commits),
// ends, run after run, with exactly what one uninterrupted run writes:
// nothing copied twice, nothing left out, in every phase. So does a move
// whose database stopped in the middle, run again once it is back.
func TestMigrateDataInterrupted(t *testing.T) {
	pg := testserver.StartPostgres(t)
	src := filepath.Join(t.TempDir(), "mediaslot.db")
	fillBolt(t, src)
	once, resumed := pg.NewDB(t), pg.NewDB(t)
	migrateCLI(t, "--from", "bbolt:"+copyFile(t, src), "--to", "postgres:"+once, "--batch", "3")

	path := copyFile(t, src)
	var total moved
	runs := 0
	for ; runs < 100; runs++ {
		ctx, cancel := context.WithCancel(context.Background())
		batches := 0
		m := &migration{path: path, dsn: resumed, batch: 3, out: io.Discard, afterBatch: func() {
			if batches++; batches == 2 {
				cancel()
			}
		}}
		err := m.run(ctx)
		cancel()
		total.add(m.moved)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "interrupted") || !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: %v", runs, err)
		}
	}
	t.Logf("%d runs", runs+1)
	if runs < 10 {
		t.Fatalf("finished after %d runs: too few batches for the test to interrupt every phase", runs)
	}
	if total.slotsThere != 0 || total.dailyThere != 0 || total.stanzasThere != 0 || total.slots != 20 || total.stanzas != 13 || total.entries != 21 {
		t.Errorf("%d runs moved %+v in all", runs, total)
	}
	want := dump(t, pool(t, once))
	if got := dump(t, pool(t, resumed)); got != want {
		t.Errorf("interrupted %d times, the database holds\n%s\nwhere one run wrote\n%s", runs, got, want)
	}

	// The server stops in the middle of a move: the run fails, saying to
	// run it again, which ends the move once the server is back.
	restarted := pg.NewDB(t)
	path = copyFile(t, src)
	batches := 0
	m := &migration{path: path, dsn: restarted, batch: 3, out: io.Discard, afterBatch: func() {
		if batches++; batches == 5 {
			pg.Stop(t)
		}
	}}
	if err := m.run(context.Background()); err == nil || !strings.Contains(err.Error(), "run migrate-data again") {
		t.Fatalf("the database stopped during the move: %v", err)
	}
	pg.Start(t)
	migrateCLI(t, "--from", "bbolt:"+path, "--to", "postgres:"+restarted, "--batch", "3")
	if got := dump(t, pool(t, restarted)); got != want {
		t.Errorf("after a restart of the database, the database holds\n%s\nwhere one run wrote\n%s", got, want)
	}
}

// pool is a pool on dsn, closed with the test.
func pool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// A database newer than the file is not overwritten. Run again after
// mediaslot served from the database (slots completed and expired there,
// a recipient drained, a new stanza queued), migrate-data copies nothing:
// the file was moved. Into a database that already served slots and relay
// messages before the move, it keeps the database's slot where the file
// has the same id, counts the uploads of both in the daily quota, and
// queues the file's stanzas after the database's, under new ids, each
// recipient's in their order.
func TestMigrateDataNewerTarget(t *testing.T) {
	pg := testserver.StartPostgres(t)
	src := filepath.Join(t.TempDir(), "mediaslot.db")
	f := fillBolt(t, src)
	ctx := context.Background()

	t.Run("moved already", func(t *testing.T) {
		dsn := pg.NewDB(t)
		path := copyFile(t, src)
		migrateCLI(t, "--from", "bbolt:"+path, "--to", "postgres:"+dsn)
		ps, pq, p := pgEnds(t, dsn, offline.Limits{})
		if _, _, err := ps.Complete(ctx, f.pendingID, time.Now(), "image/png"); err != nil {
			t.Fatal(err)
		}
		if err := ps.Expire(ctx, f.ids[1]); err != nil {
			t.Fatal(err)
		}
		drainAll(t, pq, "bob@example.net")
		if err := pq.Enqueue(ctx, "zed@example.net", []string{"carol@example.org"}, []byte("<message>new</message>")); err != nil {
			t.Fatal(err)
		}
		before := dump(t, p)
		out := migrateCLI(t, "--from", "bbolt:"+path, "--to", "postgres:"+dsn)
		if !strings.Contains(out, "nothing to copy") {
			t.Errorf("second run:\n%s", out)
		}
		if after := dump(t, p); after != before {
			t.Errorf("the second run changed the database:\n%s\nwas\n%s", after, before)
		}
	})

	t.Run("served before", func(t *testing.T) {
		dsn := pg.NewDB(t)
		ps, pq, _ := pgEnds(t, dsn, offline.Limits{})
		mine := slotstore.Record{Owner: "zed@example.com", Filename: "z", Size: 7, Issued: f.now, Expires: f.now.Add(time.Hour)}
		if over, err := ps.Issue(ctx, f.pendingID, mine, time.Time{}, slotstore.Quota{}, f.now); err != nil || over != nil {
			t.Fatal(over, err)
		}
		// an upload of alice's in the minute of one in the file
		up := slotstore.Record{Owner: "alice@example.net", Filename: "u", Size: 5, Issued: f.now, Expires: f.now.Add(time.Hour)}
		if over, err := ps.Issue(ctx, "upload-before-the-move", up, time.Time{}, slotstore.Quota{}, f.now); err != nil || over != nil {
			t.Fatal(over, err)
		}
		if _, _, err := ps.Complete(ctx, "upload-before-the-move", f.now.Add(time.Second), "image/png"); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if err := pq.Enqueue(ctx, "zed@example.com", []string{"bob@example.net"}, fmt.Appendf(nil, "<message>%d</message>", i)); err != nil {
				t.Fatal(err)
			}
		}
		path := copyFile(t, src)
		bs, bq := boltEnds(t, copyFile(t, src), offline.Limits{})
		out := migrateCLI(t, "--from", "bbolt:"+path, "--to", "postgres:"+dsn)
		if !strings.Contains(out, "slot records: 19 moved, 1 found in the database already") || !strings.Contains(out, "ids shifted by 2") ||
			!strings.Contains(out, "1 added to the database's of the same minute") {
			t.Errorf("output:\n%s", out)
		}
		probe := slotstore.Record{Owner: "alice@example.net", Filename: "x", Size: 1, Issued: f.now, Expires: f.now.Add(time.Minute)}
		bo, _ := bs.Issue(ctx, "quota-probe", probe, probe.Expires, slotstore.Quota{Daily: 1}, f.now)
		po, _ := ps.Issue(ctx, "quota-probe", probe, probe.Expires, slotstore.Quota{Daily: 1}, f.now)
		if bo == nil || po == nil || po.Used != bo.Used+up.Size {
			t.Errorf("alice's uploads of the day: %+v in the database, %+v in the file, want the file's and the database's", po, bo)
		}
		if r, err := ps.Lookup(ctx, f.pendingID); err != nil || !sameRecord(r, mine) {
			t.Errorf("the database's slot: %+v %v, want %+v", r, err, mine)
		}
		got := drainAll(t, pq, "bob@example.net")
		if len(got) < 2 || string(got[0].Stanza) != "<message>0</message>" || string(got[1].Stanza) != "<message>1</message>" {
			t.Fatalf("bob's queue does not start with the database's own: %+v", got)
		}
		if err := sameEntries(drainAll(t, bq, "bob@example.net"), got[2:], 2); err != nil {
			t.Errorf("the file's entries after them: %v", err)
		}
		for _, r := range []string{"never@example.net", "alice@example.net"} {
			if err := sameEntries(drainAll(t, bq, r), drainAll(t, pq, r), 2); err != nil {
				t.Errorf("%s: %v", r, err)
			}
		}
	})
}

// migrate-data refuses a file a running mediaslot holds, and changes
// nothing in it.
func TestMigrateDataRefusesLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mediaslot.db")
	dbfiletest.Sound(t, path, 10)
	holder, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	before, _ := os.ReadFile(path)
	var out, errs bytes.Buffer
	code := run(context.Background(), []string{"migrate-data", "--from", "bbolt:" + path, "--to", "postgres://nobody@127.0.0.1:1/x"}, &out, &errs)
	if code != 1 || !strings.Contains(errs.String(), "locked by another process") || !strings.Contains(errs.String(), "stop it first") {
		t.Errorf("exit %d:\n%s", code, errs.String())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the file changed")
	}
}

// The ends of a move come from the flags, else from --config, whose [data]
// also gives the password (here from the environment); anything else is a
// clear error.
func TestMigrateEnds(t *testing.T) {
	dir := t.TempDir()
	cfg, db := dbConfig(t, dir)
	conf, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, append(conf, "backend = \"postgres\"\ndsn = \"postgres://mediaslot@db.example.net/mediaslot\"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MEDIASLOT_DATA_PASSWORD", "s3cret")
	for _, c := range []struct {
		from, to, cfg string
		path, dsn     string
		err           string
	}{
		{cfg: cfg, path: db, dsn: "postgres://mediaslot:s3cret@db.example.net/mediaslot"},
		{from: "bbolt:/x/m.db", to: "postgres:host=/run/postgresql dbname=m", path: "/x/m.db", dsn: "host=/run/postgresql dbname=m password='s3cret'"},
		{from: "bbolt:/x/m.db", to: "postgres://u@h/d", cfg: cfg, path: "/x/m.db", dsn: "postgres://u:s3cret@h/d"},
		{from: "bbolt:/x/m.db", to: "postgres://u:pw@h/d", err: "data.dsn has a password and data.password"},
		{from: "/x/m.db", to: "postgres://u@h/d", err: `--from "/x/m.db": want bbolt:PATH`},
		{from: "bbolt:/x/m.db", to: "mysql://u@h/d", err: `--to "mysql://u@h/d": want postgres:DSN`},
		{to: "postgres://u@h/d", err: "name the bbolt file"},
		{from: "bbolt:/x/m.db", err: "name the database"},
	} {
		path, dsn, err := migrateEnds(c.from, c.to, c.cfg)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: %v, want %q", c, err, c.err)
			}
			continue
		}
		if err != nil || path != c.path || dsn != c.dsn {
			t.Errorf("%+v: %q %q %v", c, path, dsn, err)
		}
	}
}
