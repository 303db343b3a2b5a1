package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"mediaslot/config"
	"mediaslot/internal/connlimit"
	"mediaslot/internal/lease"
	"mediaslot/internal/redact"
	"mediaslot/internal/siblings"
	"mediaslot/offline"
	"mediaslot/store"
	"mediaslot/store/disk"
	"mediaslot/store/s3"
	"mediaslot/upload"
	"mediaslot/xmpp"
	"mediaslot/xmpp/relay"
)

// shutdownGrace bounds how long uploads in progress may run on after SIGTERM.
const shutdownGrace = 8 * time.Second

// The HTTP front's timeouts, in docs/OPERATIONS.md ("Timeouts"). Variables
// for tests.
var (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
)

// slotsWaiting bounds the slot requests waiting for PostgreSQL at once
// (running or waiting for one of the pool's connections): a client's burst
// (ten files shared at once; the pool has four connections on two CPUs)
// waits its turn, while a flood that meets a stalled database is refused
// at once with wait/service-unavailable, at a cost of a goroutine each.
const slotsWaiting = 256

// maxHeaderBytes bounds a request's line and headers. net/http parses
// headers into a map as they arrive, several times their size: 64 KiB of
// short headers held 0.55 MiB for the 10 s a slow client may take to send
// them (or a download's whole length), 550 MiB over 1000 connections; 16
// KiB (net/http reads 4 KiB more before it answers 431) hold 0.25 MiB.
// XMPP clients and browsers send 1 to 2 KiB.
const maxHeaderBytes = 16 << 10

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "mediaslot.toml", "configuration `file` (TOML)")
	checkOnly := fs.Bool("check-config", false, "check the configuration, the XMPP server, the store and the database, print the results and exit (0: all ok)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *checkOnly {
		return checkConfig(ctx, *path, stdout)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log := slog.New(redact.Handler(newLogger(cfg.Log, stderr).Handler(),
		cfg.Component.Secret, cfg.Upload.TokenKey, cfg.Store.S3.SecretAccessKey, cfg.Data.Password))
	slog.SetDefault(log)
	obs := newObservers(cfg.Admin)

	if err := os.MkdirAll(cfg.Data.Dir, 0o700); err != nil {
		return err
	}
	key, err := cfg.TokenKeyBytes()
	if err != nil {
		return err
	}
	data, err := openData(ctx, cfg)
	if err != nil {
		return err
	}
	defer data.Close(log)

	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	_, direct := st.(store.Presigner)
	records, err := data.records(direct, log)
	if err != nil {
		return err
	}
	svc, err := upload.New(upload.Options{
		Download: upload.Download{
			Mode:        upload.DownloadMode(cfg.Store.S3.Download),
			PublicURL:   cfg.Store.S3.PublicURL,
			URLLifetime: time.Duration(cfg.Store.S3.URLLifetime),
		},
		Policy: upload.Policy{
			MaxFileSize:    cfg.Upload.MaxFileSize,
			SlotLifetime:   time.Duration(cfg.Upload.SlotLifetime),
			FileLifetime:   time.Duration(cfg.Upload.FileLifetime),
			AllowedDomains: cfg.Domains(),
			AllowedJIDs:    cfg.Upload.AllowedJIDs,
			DeniedDomains:  cfg.Upload.DeniedDomains,
			DeniedJIDs:     cfg.Upload.DeniedJIDs,
			Quota: upload.Quota{
				DailyBytes:  cfg.Upload.DailyQuota,
				UserBytes:   cfg.Upload.UserQuota,
				DomainBytes: cfg.Upload.DomainQuota,
				TotalBytes:  cfg.Upload.TotalQuota,
			},
			SlotRate:          cfg.Upload.SlotRate,
			SlotBurst:         cfg.Upload.SlotBurst,
			MaxUploadsPerUser: cfg.Upload.MaxUploadsPerUser,
		},
		Records:       records,
		Store:         st,
		CheckInterval: time.Duration(cfg.Store.CheckInterval),
		Key:           key,
		PublicURL:     cfg.HTTP.PublicURL,
		CORSOrigin:    cfg.HTTP.CORSOrigins,
		Logger:        log,
		Observer:      obs.upload,
	})
	if err != nil {
		return err
	}
	obs.watchStore(svc)
	once := &perCluster{pool: data.pool, log: log, obs: obs}
	opts := xmpp.Options{
		JID:          cfg.Component.JID,
		Server:       cfg.Component.Server,
		Secret:       cfg.Component.Secret,
		ReconnectMax: time.Duration(cfg.Component.ReconnectMax),
		Version:      version,
		Slots:        svc,
		Logger:       log,
		Observer:     obs.xmpp,
	}
	if data.pool != nil {
		// Each slot waits for a round trip to PostgreSQL: off the read
		// loop. The pool runs as many at once as it has connections; the
		// others wait for one, each within the handler's bound.
		opts.SlotWorkers = slotsWaiting
	}
	var bus *siblings.Bus // several instances: their notes to each other
	if cfg.Relay.Enabled {
		q, err := data.queue(ctx, offline.Limits{
			MaxMessages: cfg.Relay.MaxMessages,
			MaxBytes:    cfg.Relay.MaxBytes,
			TTL:         time.Duration(cfg.Relay.TTL),

			SenderShare:       cfg.Relay.SenderShare,
			MaxSenderMessages: cfg.Relay.MaxSenderMessages,
			MaxSenderBytes:    cfg.Relay.MaxSenderBytes,
			MaxTotalMessages:  cfg.Relay.MaxTotalMessages,
			MaxTotalBytes:     cfg.Relay.MaxTotalBytes,
			UnseenTTL:         time.Duration(cfg.Relay.UnseenTTL),
			MaxUnseenMessages: cfg.Relay.MaxUnseenMessages,
			MaxUnseenBytes:    cfg.Relay.MaxUnseenBytes,
		})
		if err != nil {
			return err
		}
		opts.Queue = q
		if p, ok := q.(offline.Presence); ok && data.pool != nil {
			// Several instances may share the database: who is online
			// is kept there too, and a delivery's confirmation that
			// reaches a sibling is passed on (internal/siblings).
			opts.Presence = p
			bus = siblings.New(data.pool, log)
			opts.Siblings = bus
		}
		obs.watchQueue(q)
		opts.Previews = svc
		opts.Relay = relay.Policy{
			SenderDomains:    cfg.Domains(),
			RecipientDomains: cfg.RelayRecipientDomains(),
			MaxStanzaBytes:   cfg.Relay.MaxStanzaSize,
			MaxBoBBytes:      cfg.Relay.MaxBoBSize,
			MaxRecipients:    cfg.Relay.MaxRecipients,
		}
		once.run(ctx, "relay-purge", func(ctx context.Context) { purgeLoop(ctx, q, log) })
	}
	comp, err := xmpp.New(opts)
	if err != nil {
		return err
	}
	if bus != nil {
		go bus.Listen(ctx, comp.Acked, nil)
		once.run(ctx, "relay-wake", func(ctx context.Context) { wakeLoop(ctx, comp, log) })
	}

	ln, err := httpListener(cfg.HTTP, log)
	if err != nil {
		return err
	}
	obs.watchHTTP(ln)
	// Every connection ends within these, whatever the client sends or
	// withholds (docs/OPERATIONS.md, "Timeouts"): the header within
	// ReadHeaderTimeout; the rest of a request within ReadTimeout, except
	// an upload's body, which the upload handler bounds by its size and
	// by 30 s without data; the next request within IdleTimeout. The
	// upload handler also bounds answers (a download by its size) and
	// closes connections whose body it did not read.
	srv := &http.Server{
		Handler:           svc.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          httpErrorLog(log),
	}
	httpDone := make(chan error, 1)
	go func() {
		if cfg.HTTP.TLSCert != "" {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			// HTTP/1.1 only: net/http would offer HTTP/2, whose one
			// connection carries up to 250 requests at once (a download
			// holds a file each), past the connection bounds, which count
			// one request and two open files per connection.
			srv.Protocols = new(http.Protocols)
			srv.Protocols.SetHTTP1(true)
			httpDone <- srv.ServeTLS(ln, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		} else {
			httpDone <- srv.Serve(ln)
		}
	}()
	log.Info("mediaslot serving", "version", version, "http", ln.Addr().String(), "public_url", cfg.HTTP.PublicURL,
		"component", cfg.Component.JID, "server", cfg.Component.Server, "store", cfg.Store.Type, "data", cfg.Data.Backend)
	stopAdmin, err := obs.serve(cfg.Admin, readiness(comp, svc, ln, cfg.Component.Server, data.ready()), log)
	if err != nil {
		return err
	}
	defer stopAdmin()

	go svc.RunProbes(ctx)
	once.run(ctx, "upload-janitor", svc.RunJanitor)
	compDone := make(chan error, 1)
	go func() { compDone <- comp.Run(ctx) }()

	select {
	case <-ctx.Done():
	case err := <-httpDone:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("uploads cut short by shutdown", "err", err)
	}
	<-compDone
	return nil
}

// httpListener opens the HTTP front's listener within the connection
// bounds of c, the total lowered to what the limit on open files allows.
func httpListener(c config.HTTP, log *slog.Logger) (*connlimit.Listener, error) {
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("http listener: %w", err)
	}
	total := c.MaxConnections
	if files, ok := connlimit.OpenFiles(); ok {
		if fit := connlimit.FitOpenFiles(total, files); fit < total {
			log.Warn("http.max_connections lowered to fit the limit on open files (two files per connection); raise the limit (systemd: LimitNOFILE=) to allow more",
				"max_connections", total, "open_files_limit", files, "lowered_to", fit)
			total = fit
		}
	}
	return connlimit.New(ln, connlimit.Limits{Total: total, PerAddr: c.MaxConnectionsPerAddress, Answer503: c.TLSCert == ""}), nil
}

// openStore builds the configured blob store. The S3 store is not contacted
// here, so mediaslot starts while S3 is down; upload.Service probes it.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (store.Store, error) {
	if cfg.Store.Type != "s3" {
		return disk.New(cfg.Store.Dir)
	}
	c := cfg.Store.S3
	st, err := s3.New(ctx, s3Options(c))
	if err != nil {
		return nil, err
	}
	if len(c.CORSOrigins) > 0 {
		// In the background, retried while S3 is down.
		go func() {
			if err := st.KeepCORS(ctx, c.CORSOrigins, time.Duration(cfg.Store.CheckInterval)); err != nil && ctx.Err() == nil {
				log.Warn("bucket CORS not set; browser uploads may fail", "err", err)
			}
		}()
	}
	return st, nil
}

// perCluster starts the background work that must run once per cluster,
// not once per instance: with the PostgreSQL backend, whose database the
// instances share, under a lease (internal/lease) that a sibling takes
// over when its holder dies; with bbolt, whose file one process owns,
// always. Exported as mediaslot_lease_held{lease=NAME} and logged.
type perCluster struct {
	pool *pgxpool.Pool // nil with bbolt
	log  *slog.Logger
	obs  *observers
}

// leaseInterval is how often a lease's holder checks its connection and
// the others try to take it: a dead holder's work resumes on a sibling
// within about this time. A variable for tests.
var leaseInterval = 5 * time.Second

func (p *perCluster) run(ctx context.Context, name string, work func(context.Context)) {
	if p.pool == nil {
		go work(ctx)
		return
	}
	l := &lease.Lease{Pool: p.pool, Name: name, Interval: leaseInterval, Log: p.log}
	p.obs.watchLease(name, l.Held)
	go l.Run(ctx, work)
}

// purgeInterval is how often expired relay messages are dropped.
const purgeInterval = 10 * time.Minute

// purgeLoop drops relay messages older than their TTL, or than the unseen
// TTL for recipients never seen online, until ctx ends.
func purgeLoop(ctx context.Context, q offline.Queue, log *slog.Logger) {
	t := time.NewTicker(purgeInterval)
	defer t.Stop()
	for {
		if n, err := q.Purge(ctx, time.Now()); err != nil {
			log.Error("purging expired relay messages", "err", err)
		} else if n > 0 {
			log.Info("purged expired relay messages", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// wakeEvery is how often the instance holding the relay-wake lease looks
// for online recipients with queued messages that no drain is delivering
// (a drain's instance died, a presence was dropped).
const wakeEvery = 5 * time.Second

// wakeLoop runs the relay's Wake at once, then every wakeEvery until ctx
// ends: a lease taken over from a dead instance may have left drains to
// finish.
func wakeLoop(ctx context.Context, comp *xmpp.Component, log *slog.Logger) {
	t := time.NewTicker(wakeEvery)
	defer t.Stop()
	for {
		if n, err := comp.Wake(ctx); err != nil {
			log.Warn("relay wake-up", "err", err)
		} else if n > 0 {
			log.Info("relay wake-up: draining recipients left waiting", "recipients", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
