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
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"mediaslot/config"
	"mediaslot/internal/groupcommit"
	"mediaslot/store/disk"
	"mediaslot/upload"
	"mediaslot/xmpp"
)

// shutdownGrace bounds how long uploads in progress may run on after SIGTERM.
const shutdownGrace = 8 * time.Second

func runServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "mediaslot.toml", "configuration `file` (TOML)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	slog.SetDefault(log)

	if err := os.MkdirAll(cfg.Data.Dir, 0o700); err != nil {
		return err
	}
	key, err := cfg.TokenKeyBytes()
	if err != nil {
		return err
	}
	dbPath := filepath.Join(cfg.Data.Dir, "mediaslot.db")
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("opening %s (is another mediaslot using it?): %w", dbPath, err)
	}
	defer db.Close()
	writer := groupcommit.New(db)
	defer writer.Close()

	st, err := disk.New(cfg.Store.Dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	svc, err := upload.New(upload.Options{
		Policy: upload.Policy{
			MaxFileSize:    cfg.Upload.MaxFileSize,
			SlotLifetime:   time.Duration(cfg.Upload.SlotLifetime),
			AllowedDomains: cfg.Domains(),
		},
		DB:         db,
		Writer:     writer,
		Store:      st,
		Key:        key,
		PublicURL:  cfg.HTTP.PublicURL,
		CORSOrigin: cfg.HTTP.CORSOrigins,
		Logger:     log,
	})
	if err != nil {
		return err
	}
	comp, err := xmpp.New(xmpp.Options{
		JID:          cfg.Component.JID,
		Server:       cfg.Component.Server,
		Secret:       cfg.Component.Secret,
		ReconnectMax: time.Duration(cfg.Component.ReconnectMax),
		Version:      version,
		Slots:        svc,
		Logger:       log,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	srv := &http.Server{
		Handler:           svc.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	httpDone := make(chan error, 1)
	go func() {
		if cfg.HTTP.TLSCert != "" {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			httpDone <- srv.ServeTLS(ln, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		} else {
			httpDone <- srv.Serve(ln)
		}
	}()
	log.Info("mediaslot serving", "version", version, "http", ln.Addr().String(), "public_url", cfg.HTTP.PublicURL,
		"component", cfg.Component.JID, "server", cfg.Component.Server, "store", cfg.Store.Dir)

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

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
