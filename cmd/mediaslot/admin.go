package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"mediaslot/config"
	"mediaslot/internal/metrics"
	"mediaslot/upload"
	"mediaslot/xmpp"
)

// observers are the metrics of one `mediaslot serve`: the hooks handed to
// upload and xmpp, and the admin listener that serves them. Without an
// admin listener there are none, and the hooks are nil (no cost).
type observers struct {
	m      *metrics.Metrics
	upload upload.Observer
	xmpp   xmpp.Observer
}

func newObservers(c config.Admin) *observers {
	if c.Listen == "" {
		return &observers{}
	}
	m := metrics.New(version, commit)
	return &observers{m: m, upload: m, xmpp: m}
}

func (o *observers) watchStore(s metrics.Store) {
	if o.m != nil {
		o.m.WatchStore(s)
	}
}

func (o *observers) watchHTTP(l metrics.HTTPListener) {
	if o.m != nil {
		o.m.WatchHTTP(l)
	}
}

func (o *observers) watchQueue(q metrics.QueueStats) {
	if o.m != nil {
		o.m.WatchQueue(q)
	}
}

func (o *observers) watchLease(name string, held func() bool) {
	if o.m != nil {
		o.m.WatchLease(name, held)
	}
}

// serve starts the admin listener on addr; stop shuts it down.
func (o *observers) serve(cfg config.Admin, ready func() []string, log *slog.Logger) (stop func(), err error) {
	if o.m == nil {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	srv := adminServer(adminHandler(o.m.Handler(), ready, cfg.Pprof), log)
	go func() { _ = srv.Serve(ln) }()
	paths := "/metrics, /healthz, /readyz"
	if cfg.Pprof {
		paths += ", /debug/pprof/"
	}
	log.Info("admin listener: "+paths, "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// The admin listener's timeouts. Its handlers read no request body, so
// net/http reads (up to 256 KiB of) a declared one before it answers:
// without a ReadTimeout, a request that declares a body and never sends it
// held its connection, and a file descriptor of the process, for ever. The
// WriteTimeout lets a CPU profile of a minute go out (pprof refuses longer
// ones with it) and bounds a client that reads nothing. Variables for tests.
var (
	adminReadHeaderTimeout = 5 * time.Second
	adminReadTimeout       = 10 * time.Second
	adminWriteTimeout      = 2 * time.Minute
)

// adminServer serves h within the admin timeouts.
func adminServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          httpErrorLog(log),
	}
}

// adminHandler serves /metrics, /healthz (the process answers: 200 "ok")
// and /readyz (200 "ready" when ready reports nothing, else 503 with one
// line per thing that is not ready), and with withPprof Go's profiler under
// /debug/pprof/. (Importing net/http/pprof also registers it on
// http.DefaultServeMux, which no listener of mediaslot serves.)
func adminHandler(metrics http.Handler, ready func() []string, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if not := ready(); len(not) > 0 {
			plain(w, http.StatusServiceUnavailable, "not ready:\n"+strings.Join(not, "\n")+"\n")
			return
		}
		plain(w, http.StatusOK, "ready\n")
	})
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, allocs, ...
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func plain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// linkState is what readiness asks the component (*xmpp.Component).
type linkState interface {
	Connected() bool
	Stalled() time.Duration
}

// stallNotReady is how long the component's read loop may hold one stanza
// before readiness says so: every request waits behind it.
const stallNotReady = 5 * time.Second

// readiness reports what keeps mediaslot from serving clients: the link to
// the XMPP server (no slot requests reach it without), a read loop stuck
// on one stanza (requests wait behind it), the store (slot requests are
// refused while it is down), the HTTP listener (nothing reaches mediaslot
// while accepting fails, e.g. out of file descriptors) and, with
// PostgreSQL, the database (db, nil for bbolt: slot requests and relay
// messages are refused while it does not answer).
func readiness(comp linkState, svc interface{ StoreErr() error }, ln metrics.HTTPListener, server string, db func() error) func() []string {
	return func() []string {
		var not []string
		if !comp.Connected() {
			not = append(not, "component: not connected to the XMPP server at "+server)
		}
		if d := comp.Stalled(); d > stallNotReady {
			not = append(not, fmt.Sprintf("component: read loop busy with one stanza for %s; requests are waiting", d.Round(time.Second)))
		}
		if err := svc.StoreErr(); err != nil {
			not = append(not, "store: "+err.Error())
		}
		if err := ln.Stats().AcceptFailing; err != nil {
			not = append(not, "http: accepting connections fails: "+err.Error())
		}
		if db == nil {
			return not
		}
		if err := db(); err != nil {
			not = append(not, "database: PostgreSQL does not answer: "+err.Error())
		}
		return not
	}
}
