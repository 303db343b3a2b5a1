package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// recordHandler hands log records to a channel, dropping them while it is
// full, so that a test that stopped reading never blocks the logger.
type recordHandler chan slog.Record

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h <- r:
	default:
	}
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// How the server ended the link is what the log says: a closed stream or a
// closed connection is the server's doing, not an XML syntax error; a real
// syntax error stays one.
func TestLinkDownCause(t *testing.T) {
	for _, c := range []struct {
		name, last string // what the server sends before closing the connection
		want       func(error) bool
	}{
		{"stream closed", "</stream:stream>", func(err error) bool { return errors.Is(err, errStreamClosed) }},
		{"connection closed", "", func(err error) bool { return errors.Is(err, errConnClosed) }},
		{"syntax error", "<iq><</iq>", func(err error) bool {
			var se *xml.SyntaxError
			return errors.As(err, &se)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newFakeServer(t, "127.0.0.1:0")
			logs := make(recordHandler, 64)
			startComponent(t, Options{Server: srv.address, Logger: slog.New(logs)})
			l := srv.nextLink(t)
			l.send(c.last)
			l.conn.Close()
			deadline := time.After(10 * time.Second)
			for {
				select {
				case r := <-logs:
					if r.Message != "component link down; reconnecting" {
						continue
					}
					var got error
					r.Attrs(func(a slog.Attr) bool {
						if a.Key == "err" {
							got, _ = a.Value.Any().(error)
						}
						return true
					})
					if !c.want(got) {
						t.Errorf("logged err=%v (%T)", got, got)
					}
					return
				case <-deadline:
					t.Fatal("no \"component link down\" record within 10 s")
				}
			}
		})
	}
}
