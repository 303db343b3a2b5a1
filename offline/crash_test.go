package offline_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/groupcommit"
	"mediaslot/offline"
	"mediaslot/offline/queuetest"
)

// crashDBEnv, when set to "options-name:path", makes
// TestCrashKeepsAcknowledged the child that enqueues into that bbolt file,
// opened with those offline.DBOptions, until it is killed.
const crashDBEnv = "MEDIASLOT_OFFLINE_CRASH_DB"

// TestCrashKeepsAcknowledged kills a process that is enqueueing (SIGKILL,
// no chance to clean up) and checks the promise of the package: every
// stanza acknowledged before the kill is there after reopening, for each
// of its recipients, in order, with counters that match the entries.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if env := os.Getenv(crashDBEnv); env != "" {
		name, path, _ := strings.Cut(env, ":")
		for _, o := range offline.DBOptions {
			if o.Name == name {
				queuetest.CrashChild(openForCrash(path, o.Opt))
			}
		}
		t.Fatalf("%s=%s: unknown options", crashDBEnv, env)
	}
	for _, o := range offline.DBOptions {
		t.Run(o.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "crash.db")
			acked := queuetest.Crash(t, "TestCrashKeepsAcknowledged", crashDBEnv+"="+o.Name+":"+path)
			q, _ := offline.OpenFile(t, path, o.Opt, offline.Limits{})
			offline.CheckConsistent(t, q)
			queuetest.CheckCrash(t, q, acked)
		})
	}
}

// openForCrash opens the child's queue, or exits.
func openForCrash(path string, opt *bolt.Options) offline.Queue {
	db, err := bolt.Open(path, 0o600, opt)
	if err == nil {
		var q *offline.BoltQueue
		if q, err = offline.Open(db, groupcommit.New(db), offline.NoLimits); err == nil {
			return q
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
	return nil
}
