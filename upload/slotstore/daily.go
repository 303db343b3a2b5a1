package slotstore

import "time"

// DailyUploads is what an owner uploaded in the minute before Stamp (DailyStamp),
// as the daily quota counts it: the unit in which `mediaslot migrate-data`
// moves the daily quota's accounting between backends.
type DailyUploads struct {
	Owner string
	Stamp time.Time
	Bytes int64
}
