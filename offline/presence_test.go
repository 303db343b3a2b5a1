package offline_test

import (
	"testing"

	"mediaslot/offline"
	"mediaslot/offline/queuetest"
)

func TestMemPresence(t *testing.T) {
	queuetest.TestPresence(t, func(*testing.T) offline.Presence { return offline.NewMemPresence() })
}
