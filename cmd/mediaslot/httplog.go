package main

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// httpErrorLog is the ErrorLog of the HTTP servers: net/http's own messages
// go to slog at warn, except failed TLS handshakes, which clients cause all
// day (scanners, clients that reject the certificate, connections dropped
// mid-handshake) and the server can do nothing about: those log at debug.
func httpErrorLog(l *slog.Logger) *log.Logger {
	return log.New(httpErrorWriter{l}, "", 0)
}

type httpErrorWriter struct{ log *slog.Logger }

// Write logs one message of net/http (log.Logger calls it once per message).
func (w httpErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}
