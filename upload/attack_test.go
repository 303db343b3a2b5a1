package upload

import (
	"context"
	"math"
	"testing"
)

// A quota check cannot be wrapped round: with max_file_size set as high
// as it goes (the quotas doing the limiting), a slot of math.MaxInt64 bytes
// requested beside a pending or stored one made used + held + size
// overflow to a negative number, which passed every quota, and its hold
// then turned the domain's and the service's held sums negative, opening
// them to everybody else.
func TestQuotaSumCannotOverflow(t *testing.T) {
	for _, c := range []struct {
		name  string
		quota Quota
	}{
		{"daily", Quota{DailyBytes: 1 << 40}},
		{"user", Quota{UserBytes: 1 << 40}},
		{"domain", Quota{DomainBytes: 1 << 40}},
		{"total", Quota{TotalBytes: 1 << 40}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.svc.opt.MaxFileSize = math.MaxInt64
			f.svc.opt.Quota = c.quota
			ctx := context.Background()
			s, err := f.svc.Issue(ctx, f.request("alice@example.net", 1000))
			if err != nil {
				t.Fatal(err)
			}
			for _, size := range []int64{math.MaxInt64, math.MaxInt64 - 500, math.MaxInt64 - 1000} {
				_, err := f.svc.Issue(ctx, f.request("alice@example.net", size))
				if ref := refusal(t, err); ref.Reason != OverQuota || !ref.RetryAt.IsZero() {
					t.Fatalf("a slot of %d bytes beside a pending one: %+v", size, ref)
				}
			}
			f.put(t, s, make([]byte, 1000))
			if _, err := f.svc.Issue(ctx, f.request("alice@example.net", math.MaxInt64)); err == nil {
				t.Fatal("a slot of MaxInt64 bytes beside a stored one was issued")
			}
			// and the quota still counts for the others
			if _, err := f.svc.Issue(ctx, f.request("bob@example.net", 1<<40)); err == nil && c.quota.DailyBytes == 0 && c.quota.UserBytes == 0 {
				t.Fatal("the held sums went negative: a slot over the quota was issued")
			}
		})
	}
}
