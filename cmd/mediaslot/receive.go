package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"mediaslot/client"
)

const receiveAbout = `Logs in, announces presence and waits for media messages: a XEP-0447 file
share, a XEP-0066 link, or a body that is only an http(s) or aesgcm:// URL.
Each file is downloaded (aesgcm:// links are decrypted), checked against the
size and SHA-256 of its XEP-0446 metadata when the sender gave them, and
saved in --out under a sanitised name that never overwrites: "name (1).ext"
if taken. One line per file: sender, saved name, size, hash ok, mismatch
or absent. Exits after --count files or when --timeout passes.
The password comes from MEDIASLOT_PASSWORD, --password-file or --password.
`

func receive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var login loginFlags
	login.register(fs)
	out := fs.String("out", "", "save files in `DIR` (created if missing)")
	count := fs.Int("count", 0, "exit after `N` files (0: no limit)")
	timeout := fs.Duration("timeout", 0, "exit after this `duration`; with --count, reaching it first is an error (0: no limit)")
	maxSize := fs.Int64("max-size", 100<<20, "refuse downloads over this many `bytes`")
	aesgcmHTTP := fs.Bool("aesgcm-http", false, "fetch aesgcm:// links over plain http instead of https (test setups only)")
	fs.Usage = usageFunc(fs, "--jid JID --out DIR [flags]", receiveAbout)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "receive", "unexpected argument %q", fs.Arg(0))
	}
	opt, err := login.options(fs, stderr)
	if err != nil {
		return err
	}
	if *out == "" {
		return usageError(stderr, "receive", "--out is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	msgs := make(chan client.Message, 16)
	opt.OnMessage = func(m client.Message) {
		if len(m.Files) == 0 {
			return
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}
	opt.AESGCMOverHTTP = *aesgcmHTTP
	c, err := client.Dial(ctx, opt)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendPresence(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "mediaslot receive: online as %s, waiting for files\n", c.JID())
	r := receiver{c: c, dir: *out, limit: *maxSize, stdout: stdout, stderr: stderr}
	for *count == 0 || r.saved < *count {
		select {
		case m := <-msgs:
			for _, f := range m.Files {
				if *count > 0 && r.saved >= *count {
					break
				}
				r.fetch(ctx, m, f)
			}
		case <-c.Done():
			return fmt.Errorf("the server ended the session: %v", c.Err())
		case <-ctx.Done():
			// Interrupted, or the timeout ended an open-ended wait: done.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && *count > 0 {
				return fmt.Errorf("%w: %d of %d files after %v", client.ErrTimeout, r.saved, *count, *timeout)
			}
			return r.result()
		}
	}
	return r.result()
}

// receiver downloads and saves the files of incoming messages.
type receiver struct {
	c              *client.Client
	dir            string
	limit          int64
	stdout, stderr io.Writer
	saved, bad     int
}

func (r *receiver) result() error {
	if r.bad > 0 {
		return fmt.Errorf("%d of %d files did not match their size or SHA-256", r.bad, r.saved)
	}
	return nil
}

// fetch downloads one file into a temporary file in the target directory,
// verifies it and moves it to its final name. A failed download is reported
// and not counted.
func (r *receiver) fetch(ctx context.Context, m client.Message, f client.SharedFile) {
	sender := m.From.String()
	if m.Via != "" {
		sender = fmt.Sprintf("%s (via %s)", m.Via, m.From)
	}
	name := f.Name
	if name == "" {
		name = client.NameFromURL(f.URL)
	}
	name = client.SafeName(name, "download")
	path, n, sum, err := r.download(ctx, f.URL, name)
	if err != nil {
		fmt.Fprintf(r.stderr, "mediaslot receive: %s from %s: %v\n", name, sender, suggestInsecure(err))
		return
	}
	check := "absent"
	switch {
	case f.Size >= 0 && n != f.Size:
		check = fmt.Sprintf("mismatch (%d bytes announced)", f.Size)
	case f.SHA256 != nil && bytes.Equal(sum, f.SHA256):
		check = "ok"
	case f.SHA256 != nil:
		check = "mismatch"
	}
	r.saved++
	if check != "ok" && check != "absent" {
		r.bad++
	}
	fmt.Fprintf(r.stdout, "%s\t%s\t%d bytes\thash %s\n", sender, filepath.Base(path), n, check)
}

func (r *receiver) download(ctx context.Context, url, name string) (path string, n int64, sum []byte, err error) {
	tmp, err := os.CreateTemp(r.dir, ".mediaslot-*.part")
	if err != nil {
		return "", 0, nil, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if n, err = r.c.Download(ctx, url, io.MultiWriter(tmp, h), r.limit); err != nil {
		return "", n, nil, err
	}
	if err = tmp.Close(); err != nil {
		return "", n, nil, err
	}
	if path, err = client.SaveUnique(tmp.Name(), r.dir, name); err != nil {
		return "", n, nil, err
	}
	return path, n, h.Sum(nil), nil
}
