package offline_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/internal/groupcommit"
	"mediaslot/offline"
	"mediaslot/offline/queuetest"
)

// crashDBEnv, when set to "options-name:path", makes
// TestCrashKeepsAcknowledged the child that enqueues into that bbolt file,
// opened with those offline.DBOptions, until it is killed.
const crashDBEnv = "MEDIASLOT_OFFLINE_CRASH_DB"

const (
	crashSenders = 8    // concurrent enqueuers in the child, so commits are shared
	crashAcks    = 1500 // acknowledgements to wait for before the kill
)

// TestCrashKeepsAcknowledged kills a process that is enqueueing (SIGKILL,
// no chance to clean up) and checks the promise of the package: every
// stanza acknowledged before the kill is there after reopening, for each
// of its recipients, in order, with counters that match the entries.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if env := os.Getenv(crashDBEnv); env != "" {
		name, path, _ := strings.Cut(env, ":")
		for _, o := range offline.DBOptions {
			if o.Name == name {
				enqueueUntilKilled(path, o.Opt)
			}
		}
		t.Fatalf("%s=%s: unknown options", crashDBEnv, env)
	}
	for _, o := range offline.DBOptions {
		t.Run(o.Name, func(t *testing.T) { crashAndCheck(t, o.Name, o.Opt) })
	}
}

func crashAndCheck(t *testing.T, name string, opt *bolt.Options) {
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledged$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDBEnv+"="+name+":"+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timeout := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	defer timeout.Stop()

	// acked[g] is how many stanzas of sender g the child acknowledged;
	// lines already in the pipe at the kill still count.
	acked := map[string]int{}
	lines := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		g, _, _ := strings.Cut(sc.Text(), ":")
		acked[g]++
		if lines++; lines == crashAcks {
			_ = cmd.Process.Kill()
		}
	}
	err = cmd.Wait()
	if lines < crashAcks {
		t.Fatalf("child stopped after %d acknowledgements (%v): %s", lines, err, stderr.Bytes())
	}
	t.Logf("killed after %d acknowledgements (%v)", lines, err)

	q, _ := offline.OpenFile(t, path, opt, offline.Limits{})
	offline.CheckConsistent(t, q)
	all := queuetest.SenderRuns(t, queuetest.DrainAll(t, q, "all"))
	for g := range crashSenders {
		s := fmt.Sprint(g)
		own := queuetest.SenderRuns(t, queuetest.DrainAll(t, q, "own"+s))
		if own[s] < acked[s] || own[s] != all[s] {
			t.Errorf("sender %s: %d acknowledged, %d stored for own%s, %d for all", s, acked[s], own[s], s, all[s])
		}
	}
}

// enqueueUntilKilled is the child's side: it enqueues from crashSenders
// goroutines to their own queue and a shared one, and prints the stanza's
// first line "g:i" once Enqueue returned nil.
func enqueueUntilKilled(path string, opt *bolt.Options) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	db, err := bolt.Open(path, 0o600, opt)
	if err != nil {
		fail(err)
	}
	q, err := offline.Open(db, groupcommit.New(db), offline.NoLimits)
	if err != nil {
		fail(err)
	}
	pad := strings.Repeat("x", 2000)
	for g := range crashSenders {
		go func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("%d:%d", g, i)
				rcpts := []string{"all", fmt.Sprint("own", g)}
				if err := q.Enqueue(context.Background(), "s", rcpts, []byte(id+"\n"+pad)); err != nil {
					fail(err)
				}
				// One write per line: whole lines even with concurrent writers.
				if _, err := os.Stdout.WriteString(id + "\n"); err != nil {
					fail(err)
				}
			}
		}()
	}
	select {} // until killed
}
