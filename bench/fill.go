package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mediaslot/internal/boltmem"
	"mediaslot/internal/dbfile"
	"mediaslot/internal/groupcommit"
	"mediaslot/offline"
)

// FillOptions configure FillQueue.
type FillOptions struct {
	DB         string // the bbolt file of a stopped mediaslot (data.dir/mediaslot.db)
	N          int    // stanzas to queue, one recipient each
	Recipients []string
	Size       int // bytes per stored stanza (at least what the markup needs)
	Progress   io.Writer
}

// FillResult says what FillQueue did.
type FillResult struct {
	N       int     `json:"n"`
	Size    int     `json:"stanza_bytes"`
	Seconds float64 `json:"seconds"`
	Stats   offline.Stats
}

// FillQueue queues N stanzas in a relay queue through the offline package,
// as the relay stores them, spread round-robin over the recipients. It
// opens the file as `mediaslot serve` does (map freelist, not synced) but
// skips the fsync of every commit and syncs once, when it closes the file:
// the filling is set-up, not what is measured. mediaslot must not be running.
func FillQueue(ctx context.Context, opt FillOptions) (res FillResult, err error) {
	res.N = opt.N
	if len(opt.Recipients) == 0 || opt.N <= 0 {
		return res, fmt.Errorf("fill-queue: nothing to do")
	}
	bopts := dbfile.Options()
	bopts.NoSync = true
	db, err := dbfile.Open(ctx, opt.DB, bopts)
	if err != nil {
		return res, err
	}
	// Closed as serve closes it, with the free list written, so that
	// mediaslot's start is measured as after a clean shutdown.
	defer func() {
		db.NoSync = false
		err = errors.Join(err, boltmem.Close(db))
	}()
	w := groupcommit.New(db)
	defer w.Close()
	perRecipient := (opt.N + len(opt.Recipients) - 1) / len(opt.Recipients)
	// One sender fills every queue: none of the caps may stop it, and every
	// recipient counts as seen, as real users who were online once.
	q, err := offline.Open(db, w, offline.Limits{
		MaxMessages: perRecipient, MaxBytes: 1 << 50, SenderShare: 1,
		MaxSenderMessages: opt.N, MaxSenderBytes: 1 << 50,
		MaxTotalMessages: opt.N, MaxTotalBytes: 1 << 50,
	})
	if err != nil {
		return res, err
	}
	for _, r := range opt.Recipients {
		if err := q.MarkSeen(ctx, r); err != nil {
			return res, err
		}
	}
	t0 := time.Now()
	var next, done atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 256 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(opt.N) || ctx.Err() != nil {
					return
				}
				r := opt.Recipients[i%int64(len(opt.Recipients))]
				st := fillStanza(i, r, opt.Size)
				if err := q.Enqueue(ctx, "fill@"+domainOf(r)+"/bench", []string{r}, st); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				if n := done.Add(1); n%100_000 == 0 && opt.Progress != nil {
					fmt.Fprintf(opt.Progress, "bench fill-queue: %d stanzas (%.0f/s)\n", n, float64(n)/time.Since(t0).Seconds())
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return res, first
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Stats, err = q.Stats()
	res.Size = len(fillStanza(0, opt.Recipients[0], opt.Size))
	return res, err
}

// fillStanza is a stored relay message, as the relay renders one: a media
// message whose body and OOB link point at an upload, padded to size.
func fillStanza(i int64, recipient string, size int) []byte {
	link := fmt.Sprintf("http://127.0.0.1/file/%032x/fill-%07d.jpg", i, i)
	head := `<message type="chat" id="fill-` + fmt.Sprint(i) + `"><body>` + link + `</body><x xmlns="jabber:x:oob"><url>` + link + `</url></x>`
	tail := `<addresses xmlns="http://jabber.org/protocol/address"><address type="to" jid="` + recipient + `" delivered="true"/></addresses></message>`
	pad := ""
	if n := size - len(head) - len(tail) - len(`<desc xmlns="urn:example:pad"></desc>`); n > 0 {
		pad = `<desc xmlns="urn:example:pad">` + strings.Repeat("x", n) + `</desc>`
	}
	return []byte(head + pad + tail)
}

func domainOf(bare string) string {
	_, d, _ := strings.Cut(bare, "@")
	return d
}
