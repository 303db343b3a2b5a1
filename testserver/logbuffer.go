package testserver

import (
	"bytes"
	"sync"
)

// LogBuffer collects a process's output, written by the process's copying
// goroutines while the test reads it to wait on a line or to report a
// failure; a bytes.Buffer alone would race.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
