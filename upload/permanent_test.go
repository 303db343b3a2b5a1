package upload

import (
	"context"
	"testing"
	"time"
)

// Purposes "permanent" and "profile" keep files until deleted, so the daily
// quota alone would let one account fill the disk a day at a time; the user
// quota (on by default, 10 GiB) bounds what it keeps: ten days of uploads at
// the daily quota store no more than the user quota.
func TestPermanentUploadsBoundedByUserQuota(t *testing.T) {
	f := newFixture(t)
	f.svc.opt.Quota = Quota{DailyBytes: 1000, UserBytes: 5000} // the defaults' shape: daily 1 GiB, user 10 GiB
	ctx := context.Background()
	stored := 0
	for range 10 {
		r := f.request("alice@example.net", 1000)
		r.Purpose = PurposePermanent
		if s, err := f.svc.Issue(ctx, r); err == nil {
			f.put(t, s, make([]byte, 1000))
			stored += 1000
		}
		f.clock.add(24*time.Hour + time.Minute)
		if _, err := f.svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if stored != 5000 {
		t.Fatalf("one account stored %d bytes of permanent files in ten days; the user quota allows 5000", stored)
	}
}
