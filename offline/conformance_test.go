package offline_test

import (
	"path/filepath"
	"testing"
	"time"

	"mediaslot/offline"
	"mediaslot/offline/queuetest"
)

// TestConformance runs the suite every backend passes on bbolt files.
func TestConformance(t *testing.T) {
	queuetest.Run(t, OpenBolt)
}

// OpenBolt is queuetest.Open for a bbolt file in a test's directory.
func OpenBolt(t testing.TB, l offline.Limits, now func() time.Time) queuetest.Instance {
	return openBoltAt(t, filepath.Join(t.TempDir(), "q.db"), l, now)
}

func openBoltAt(t testing.TB, path string, l offline.Limits, now func() time.Time) queuetest.Instance {
	q, closeQueue := offline.OpenFile(t, path, nil, l)
	q.SetNow(now)
	return queuetest.Instance{
		Queue: q,
		Check: func(t testing.TB) { offline.CheckConsistent(t, q) },
		Restart: func(t testing.TB) queuetest.Instance {
			closeQueue()
			return openBoltAt(t, path, l, now)
		},
	}
}
