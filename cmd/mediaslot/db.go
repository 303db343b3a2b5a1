package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"mediaslot/config"
	"mediaslot/internal/dbfile"
)

// dbPath is the bbolt file of a configuration.
func dbPath(cfg config.Config) string { return filepath.Join(cfg.Data.Dir, "mediaslot.db") }

const dbAbout = `Reads the whole database (data.dir/mediaslot.db of --config, or the file
--db names, such as a backup before restoring it) without changing it, and
reports what is wrong: a file cut short, damaged pages, bbolt's consistency
check. mediaslot must be stopped: a running one holds the file.
Exit status 0: sound; 1: damaged, locked or unreadable.`

func runDB(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return usageError(stderr, "db", "usage: mediaslot db check [--config FILE | --db FILE]")
	}
	fs := flag.NewFlagSet("db check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "mediaslot.toml", "configuration `file` (TOML): checks data.dir/mediaslot.db")
	file := fs.String("db", "", "the bbolt `FILE` to check instead")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mediaslot db check [--config FILE | --db FILE]\n\n%s\n\nflags:\n", dbAbout)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	path := *file
	if path == "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return fmt.Errorf("%w (or name the file with --db)", err)
		}
		if cfg.Data.Backend == config.BackendPostgres {
			return fmt.Errorf("%s keeps its data in PostgreSQL (data.backend = %q): db check reads bbolt files (name one with --db); "+
				"`mediaslot serve --check-config` probes the database", *cfgPath, config.BackendPostgres)
		}
		path = dbPath(cfg)
	}
	r, err := dbfile.Check(ctx, path)
	var de *dbfile.DamagedError
	if errors.As(err, &de) {
		fmt.Fprintf(stdout, "%s is DAMAGED:\n", path)
		for _, p := range de.Problems {
			fmt.Fprintf(stdout, "  - %s\n", p)
		}
		fmt.Fprintln(stdout, "mediaslot does not start on it. Restore the file from a backup (check the copy with --db first),\n"+
			"or move it aside to start with an empty database; docs/OPERATIONS.md, \"A damaged database\".")
		return errors.New("the database is damaged")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is sound: %s\n", path, r)
	return nil
}
