package upload

import (
	"fmt"
	"time"

	"mediaslot/refusal"
	"mediaslot/upload/slotstore"
)

// quotas are the policy's quotas, as the slot store checks them.
func (s *Service) quotas() slotstore.Quota {
	q := s.opt.Quota
	return slotstore.Quota{Daily: q.DailyBytes, User: q.UserBytes, Domain: q.DomainBytes, Total: q.TotalBytes}
}

// overRefusal words the refusal of a request of owner's for size bytes
// that the slot store found over a quota, saying when it would pass: for
// the daily quota when enough of the last 24 hours' uploads leave the
// window, for the stored quotas when the sweeper has deleted enough
// expired files, and when pending uploads are what fills it, once their
// holds have ended.
func (s *Service) overRefusal(o *slotstore.Over, owner string, size int64, now time.Time) *refusal.Error {
	at := o.Freed
	afterHolds := at.IsZero() && slotstore.Sum(o.Used, size) <= o.Limit
	if o.Scope == slotstore.Daily {
		if size > o.Limit {
			at, afterHolds = time.Time{}, false
		}
		if afterHolds {
			at = s.holdsEnd(now)
		}
		return quotaRefusal(at, "Daily upload quota of %s reached (%s in the last 24 hours%s)", human(o.Limit), human(o.Used), pendingText(o.Held))
	}
	if !at.IsZero() {
		at = at.Add(sweepInterval) // deleted by the next sweep after
	} else if afterHolds {
		at = s.holdsEnd(now)
	}
	what := [...]string{
		slotstore.User:   "Your storage quota",
		slotstore.Domain: "The storage quota of " + slotstore.DomainOf(owner),
		slotstore.Total:  "The upload service's storage",
	}[o.Scope]
	return quotaRefusal(at, "%s of %s is full (%s used%s)", what, human(o.Limit), human(o.Used), pendingText(o.Held))
}

// pendingText says how much of a quota pending uploads hold, if any.
func pendingText(held int64) string {
	if held == 0 {
		return ""
	}
	return ", " + human(held) + " in pending uploads"
}

// holdUntil is when the hold of a slot issued now ends if no upload
// starts: with its upload window, or for direct uploads, which mediaslot
// does not see start, never by itself (the sweeper settles the slot).
func (s *Service) holdUntil(expires time.Time) time.Time {
	if s.direct != nil {
		return time.Time{}
	}
	return expires
}

// holdsEnd is when the holds of the slots pending now have ended: their
// upload windows closed, or for direct uploads, the sweeper settled them.
func (s *Service) holdsEnd(now time.Time) time.Time {
	end := now.Add(s.opt.SlotLifetime)
	if s.direct != nil {
		end = end.Add(sweepGrace + sweepInterval)
	}
	return end
}

func quotaRefusal(at time.Time, format string, a ...any) *refusal.Error {
	text := fmt.Sprintf(format, a...)
	if at.IsZero() {
		text += "; delete files or ask the administrator"
	} else {
		text += fmt.Sprintf("; you can upload again after %s", at.UTC().Format("2006-01-02 15:04 MST"))
	}
	return &refusal.Error{Kind: refusal.OverQuota, Text: text, RetryAt: at}
}

// human writes a byte count the way people read it.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
