package queuetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"mediaslot/offline"
)

// The crash test of every backend: a child process enqueues until it is
// killed (SIGKILL, no chance to clean up), and every stanza it
// acknowledged must be there afterwards, for each of its recipients, in
// order.
const (
	crashSenders = 8    // concurrent enqueuers in the child, so commits are shared
	crashAcks    = 1500 // acknowledgements to wait for before the kill
)

// Crash runs the test named test of this test binary again as the child,
// with env added to its environment (which tells it to call CrashChild),
// kills it once it has acknowledged enough, and returns how many stanzas
// of each sender it acknowledged. Lines already in the pipe at the kill
// still count.
func Crash(t *testing.T, test string, env ...string) (acked map[string]int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
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
	acked = map[string]int{}
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
	return acked
}

// CrashChild is the child's side: it enqueues into q from crashSenders
// goroutines to their own recipient and a shared one, and prints the
// stanza's first line "g:i" once Enqueue returned nil, until killed.
func CrashChild(q offline.Queue) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
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

// CheckCrash drains what the child left in q and fails the test if a
// stanza it acknowledged is missing for one of its recipients, or came out
// of order.
func CheckCrash(t *testing.T, q offline.Queue, acked map[string]int) {
	t.Helper()
	all := SenderRuns(t, DrainAll(t, q, "all"))
	for g := range crashSenders {
		s := fmt.Sprint(g)
		own := SenderRuns(t, DrainAll(t, q, "own"+s))
		if own[s] < acked[s] || own[s] != all[s] {
			t.Errorf("sender %s: %d acknowledged, %d stored for own%s, %d for all", s, acked[s], own[s], s, all[s])
		}
	}
}
