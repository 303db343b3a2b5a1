package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"mediaslot/config"
	"mediaslot/internal/dbfile"
	"mediaslot/store/s3"
)

// checkStore writes, reads back and deletes a probe object in the store.
func checkStore(ctx context.Context, cfg config.Config) (string, string, error) {
	var detail string
	var err error
	if cfg.Store.Type == "s3" {
		detail, err = checkS3(ctx, cfg.Store.S3)
	} else {
		detail, err = checkDisk(cfg.Store.Dir)
	}
	return "store", detail, err
}

// s3Options maps the configuration to the S3 store's options.
func s3Options(c config.S3) s3.Options {
	return s3.Options{
		Endpoint:        c.Endpoint,
		Region:          c.Region,
		Bucket:          c.Bucket,
		Prefix:          c.Prefix,
		PathStyle:       c.PathStyle,
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
	}
}

// probeKey is a key no slot has (slot ids are 32 hex digits).
func probeKey() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "mediaslot-check-" + hex.EncodeToString(b[:])
}

var probeData = []byte("mediaslot --check-config probe\n")

// checkS3 lists the bucket (s3.Store.Check, which names what is wrong),
// then puts, reads and deletes a probe object.
func checkS3(ctx context.Context, c config.S3) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*checkTimeout)
	defer cancel()
	st, err := s3.New(ctx, s3Options(c))
	if err != nil {
		return "", fmt.Errorf("cannot set up the S3 client: %v", err)
	}
	cctx, ccancel := context.WithTimeout(ctx, checkTimeout)
	err = st.Check(cctx)
	ccancel()
	switch {
	case errors.Is(err, s3.ErrNoBucket):
		return "", fmt.Errorf("bucket does not exist: %v: create it, or fix store.s3.bucket (and store.s3.region)", err)
	case errors.Is(err, s3.ErrCredentials):
		return "", fmt.Errorf("%v: fix store.s3.access_key_id and the secret (%s or store.s3.secret_access_key)", err, config.EnvS3Secret)
	case errors.Is(err, s3.ErrUnreachable):
		return "", fmt.Errorf("%v: is store.s3.endpoint right, and the S3 server running?", err)
	case err != nil:
		return "", err
	}
	key := probeKey()
	if err := st.Put(ctx, key, bytes.NewReader(probeData), int64(len(probeData))); err != nil {
		return "", fmt.Errorf("cannot write the probe object %s%s: %v (the credentials need s3:PutObject)", c.Prefix, key, err)
	}
	readErr := readBack(func() (io.ReadCloser, error) { return st.Open(ctx, key) })
	if err := st.Delete(ctx, key); err != nil {
		return "", fmt.Errorf("cannot delete the probe object %s%s: %v (the credentials need s3:DeleteObject; delete it by hand)", c.Prefix, key, err)
	}
	if readErr != nil {
		return "", fmt.Errorf("cannot read the probe object back: %v (the credentials need s3:GetObject)", readErr)
	}
	where := c.Endpoint
	if where == "" {
		where = "AWS"
	}
	return fmt.Sprintf("bucket %s at %s: listed; a probe object was written, read back and deleted", c.Bucket, where), nil
}

// readBack opens an object and compares it with probeData.
func readBack(open func() (io.ReadCloser, error)) error {
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, probeData) {
		return fmt.Errorf("read %d bytes that differ from the %d written", len(got), len(probeData))
	}
	return nil
}

// checkDisk writes, reads back and deletes a probe file in the store
// directory. It does not open the disk store itself, which would clear the
// temporary files of uploads in progress if mediaslot is running.
func checkDisk(dir string) (string, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := creatable(dir); err != nil {
			return "", err
		}
		return dir + " does not exist yet; mediaslot will create it", nil
	}
	if err != nil {
		return "", fmt.Errorf("cannot use store.dir %s: %v", dir, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("store.dir %s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".mediaslot-check-*")
	if err != nil {
		return "", writeError(dir, err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write(probeData)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("cannot write in %s: %v (disk full?)", dir, err)
	}
	if err := readBack(func() (io.ReadCloser, error) { return os.Open(name) }); err != nil {
		return "", fmt.Errorf("cannot read back a probe file in %s: %v", dir, err)
	}
	if err := os.Remove(name); err != nil {
		return "", fmt.Errorf("cannot delete a probe file in %s: %v", dir, err)
	}
	var sfs syscall.Statfs_t
	free := ""
	if syscall.Statfs(dir, &sfs) == nil {
		free = fmt.Sprintf(", %.1f GiB free", float64(sfs.Bavail)*float64(sfs.Bsize)/(1<<30))
	}
	return fmt.Sprintf("%s: a probe file was written, read back and deleted%s", dir, free), nil
}

// writeError explains why a directory is not writable.
func writeError(dir string, err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		owner := ""
		if st, serr := os.Stat(dir); serr == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				owner = fmt.Sprintf(", owned by uid %d, mode %v", sys.Uid, st.Mode().Perm())
			}
		}
		return fmt.Errorf("cannot write in %s (checked as uid %d%s): %v: make it writable for the user mediaslot runs as",
			dir, os.Geteuid(), owner, errors.Unwrap(err))
	}
	return fmt.Errorf("cannot write in %s: %v", dir, err)
}

// creatable reports whether dir could be created: its nearest existing
// ancestor must be a writable directory. Nothing is created.
func creatable(dir string) error {
	p := filepath.Clean(dir)
	for {
		parent := filepath.Dir(p)
		st, err := os.Stat(parent)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("cannot create %s: %s is not a directory", dir, parent)
			}
			if err := syscall.Access(parent, 2 /* W_OK */); err != nil {
				return writeError(parent, &fs.PathError{Op: "create", Path: dir, Err: err})
			}
			return nil
		}
		if parent == p {
			return fmt.Errorf("cannot create %s: %v", dir, err)
		}
		p = parent
	}
}

// checkDatabase reads the whole bbolt file as serve does before it opens
// it (dbfile.Check): it fails at once when another process (a running
// mediaslot) holds it, and names the damage of a damaged one. With
// data.backend = "postgres" it probes the database instead (checkPostgres).
func checkDatabase(ctx context.Context, cfg config.Config) (string, string, error) {
	if cfg.Data.Backend == config.BackendPostgres {
		return checkPostgres(ctx, cfg)
	}
	path := dbPath(cfg)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(cfg.Data.Dir); errors.Is(err, fs.ErrNotExist) {
			if err := creatable(cfg.Data.Dir); err != nil {
				return "database", "", err
			}
		} else if err := syscall.Access(cfg.Data.Dir, 2 /* W_OK */); err != nil {
			return "database", "", writeError(cfg.Data.Dir, &fs.PathError{Op: "create", Path: path, Err: err})
		}
		return "database", path + " does not exist yet; mediaslot will create it", nil
	}
	r, err := dbfile.Check(ctx, path)
	switch {
	case errors.Is(err, dbfile.ErrLocked):
		return "database", "", fmt.Errorf("%s is locked by another process: is mediaslot already running? "+
			"(one mediaslot per data.dir)", path)
	case err != nil:
		return "database", "", err
	}
	return "database", fmt.Sprintf("%s opens and is not in use: %s", path, r), nil
}

// checkTokenKey checks the HMAC key of upload URLs without creating one,
// as serve would read it: a key shorter than config.MinTokenKey fails.
func checkTokenKey(cfg config.Config) (string, string, error) {
	k, err := cfg.LoadTokenKey()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "token key", cfg.TokenKeyPath() + " does not exist yet; mediaslot will create it", nil
	case err != nil:
		return "token key", "", err
	case cfg.Upload.TokenKey != "":
		return "token key", fmt.Sprintf("set in the configuration (%d bytes)", len(k)), nil
	}
	return "token key", fmt.Sprintf("%s (%d bytes)", cfg.TokenKeyPath(), len(k)), nil
}
