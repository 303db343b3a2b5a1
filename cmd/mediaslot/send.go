package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"mellium.im/xmpp/jid"

	"mediaslot/client"
	"mediaslot/client/aesgcm"
)

// This file holds the send command and what the client commands (send,
// receive, check) share: login flags, exit codes, argument parsing.

// Exit codes of the client commands, beyond 0, 1 (any other error) and 2
// (usage); main's run maps errors to them with exitCode.
const (
	exitAuth        = 3
	exitUnreachable = 4
	exitNoService   = 5
	exitTooLarge    = 6
	exitRefused     = 7
	exitRecipient   = 8
	exitTimeout     = 9
	exitConformance = 10
)

const exitCodesHelp = `exit codes:
  0   success
  1   other errors (a received file that fails verification, a bad file, ...)
  2   usage error (bad flags, no password)
  3   login refused: wrong JID or password
  4   server unreachable
  5   no XEP-0363 upload service found
  6   file too large for the service
  7   upload refused (slot request or HTTP PUT)
  8   a recipient refused the message
  9   timed out
  10  check: a MUST-level check failed
`

// errConformance marks a check run with failed MUST checks.
var errConformance = errors.New("MUST-level check(s) failed")

// exitCode maps an error to the documented exit code; 1 for anything else.
func exitCode(err error) int {
	var re *client.RecipientError
	var se *client.StanzaError
	var he *client.HTTPError
	switch {
	case errors.As(err, &re):
		return exitRecipient
	case errors.Is(err, client.ErrAuth):
		return exitAuth
	case errors.Is(err, client.ErrUnreachable):
		return exitUnreachable
	case errors.Is(err, client.ErrNoService):
		return exitNoService
	case errors.Is(err, client.ErrFileTooLarge):
		return exitTooLarge
	case errors.Is(err, client.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return exitTimeout
	case errors.As(err, &se), errors.As(err, &he):
		return exitRefused
	case errors.Is(err, errConformance):
		return exitConformance
	}
	return 1
}

// usageError prints a usage problem; run exits 2 without printing errUsage.
func usageError(stderr io.Writer, name, format string, a ...any) error {
	fmt.Fprintf(stderr, "mediaslot %s: %s\n", name, fmt.Sprintf(format, a...))
	return errUsage
}

// loginFlags are the account flags of the client commands.
type loginFlags struct {
	jid          string
	password     string
	passwordFile string
	server       string
	insecure     bool
}

func (l *loginFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.jid, "jid", "", "account `JID` (user@domain)")
	fs.StringVar(&l.password, "password", "", "account password (visible to other users in the process list: prefer MEDIASLOT_PASSWORD or --password-file)")
	fs.StringVar(&l.passwordFile, "password-file", "", "read the password from the first line of `FILE`")
	fs.StringVar(&l.server, "server", "", "connect to `HOST:PORT` instead of the JID's domain on port 5222")
	fs.BoolVar(&l.insecure, "insecure", false, "accept any TLS certificate (self-signed test servers)")
}

// options turns the flags into client options; problems are usage errors.
func (l *loginFlags) options(fs *flag.FlagSet, stderr io.Writer) (client.Options, error) {
	name := fs.Name()
	if l.jid == "" {
		return client.Options{}, usageError(stderr, name, "--jid is required")
	}
	j, err := jid.Parse(l.jid)
	if err != nil || j.Localpart() == "" {
		return client.Options{}, usageError(stderr, name, "--jid %q is not an account JID (user@domain)", l.jid)
	}
	passwordSet := false
	fs.Visit(func(f *flag.Flag) { passwordSet = passwordSet || f.Name == "password" })
	var pass string
	switch {
	case passwordSet && l.passwordFile != "":
		return client.Options{}, usageError(stderr, name, "use only one of --password and --password-file")
	case l.passwordFile != "":
		b, err := os.ReadFile(l.passwordFile)
		if err != nil {
			return client.Options{}, usageError(stderr, name, "--password-file: %v", err)
		}
		pass, _, _ = strings.Cut(string(b), "\n")
		pass = strings.TrimSuffix(pass, "\r")
	case passwordSet:
		pass = l.password
	default:
		pass = os.Getenv("MEDIASLOT_PASSWORD")
	}
	if pass == "" {
		return client.Options{}, usageError(stderr, name, "no password: set MEDIASLOT_PASSWORD or use --password-file (or --password)")
	}
	return client.Options{
		JID:      j,
		Password: pass,
		Server:   l.server,
		Insecure: l.insecure,
		Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, nil
}

// parseInterleaved parses flags that may come after positional arguments
// (mediaslot send FILE --to bob@example.net), returning the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// listFlag is a flag that may be given more than once, each time with a
// comma-separated list: --to a --to b,c means a, b and c.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// usageFunc prints a command's synopsis, its flags and the exit codes.
func usageFunc(fs *flag.FlagSet, synopsis, about string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: mediaslot %s %s\n\n%s\nflags:\n", fs.Name(), synopsis, about)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\n%s", exitCodesHelp)
	}
}

const sendAbout = `Uploads each FILE to the XEP-0363 service (discovered on the account's
server, or --service) and sends one media message per file: the URL as body
and XEP-0066 link, XEP-0447/0446 metadata (type, name, size, SHA-256, image
dimensions) and, for images, a small PNG thumbnail (XEP-0264 + XEP-0231).
Files over the service's max-file-size are refused before uploading.

By default the message goes once to the upload component, which relays it to
every recipient (XEP-0033) and holds it for offline ones; if the component
does not relay, or with --direct, each recipient gets a chat message.

--encrypt uses XEP-0454: the file is encrypted with AES-256-GCM before the
upload (the service stores only ciphertext under a random name) and the
message body is an aesgcm:// link carrying the key. The message itself is not
encrypted, so it carries nothing else: no thumbnail, no name, no hash.
Each file's link is printed when its message is sent (with --encrypt, the
aesgcm:// link, which holds the key). Bounces that the recipients' server
sends at once are reported (exit code 8); through the relay, refusals reach
the sender later as error messages from the relay.
The password comes from MEDIASLOT_PASSWORD, --password-file or --password.
`

type sendFlags struct {
	login      loginFlags
	service    string
	to         listFlag
	direct     bool
	encrypt    bool
	aesgcmHTTP bool
	timeout    time.Duration
}

func send(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f sendFlags
	f.login.register(fs)
	fs.StringVar(&f.service, "service", "", "upload service `JID` (default: discovered on the server)")
	fs.Var(&f.to, "to", "recipient `JIDs`, comma-separated; may be repeated")
	fs.BoolVar(&f.direct, "direct", false, "send a chat message to each recipient instead of one message through the relay")
	fs.BoolVar(&f.encrypt, "encrypt", false, "encrypt with XEP-0454 (aesgcm:// link; no thumbnail or metadata is sent)")
	fs.BoolVar(&f.aesgcmHTTP, "aesgcm-http", false, "allow --encrypt with a plain-http service, which XEP-0454 forbids (test setups only)")
	fs.DurationVar(&f.timeout, "timeout", 0, "give up after this `duration` (0: no limit; each XMPP request still times out after 30s)")
	fs.Usage = usageFunc(fs, "--jid JID --to JID[,JID...] [flags] FILE...", sendAbout)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	opt, err := f.login.options(fs, stderr)
	if err != nil {
		return err
	}
	var recipients []jid.JID
	var names []string
	for _, s := range f.to {
		j, err := jid.Parse(s)
		if err != nil {
			return usageError(stderr, "send", "--to: %q is not a JID", s)
		}
		if !slices.Contains(names, j.String()) {
			recipients, names = append(recipients, j), append(names, j.String())
		}
	}
	if len(recipients) == 0 || len(files) == 0 {
		return usageError(stderr, "send", "need --to and at least one FILE (see mediaslot send --help)")
	}
	var service jid.JID
	if f.service != "" {
		if service, err = jid.Parse(f.service); err != nil {
			return usageError(stderr, "send", "--service %q is not a JID", f.service)
		}
	}
	sizes := make([]int64, len(files))
	for i, name := range files {
		st, err := os.Stat(name)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", name)
		}
		sizes[i] = st.Size()
		if f.encrypt {
			sizes[i] += aesgcm.TagSize
		}
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	opt.AESGCMOverHTTP = f.aesgcmHTTP

	c, err := client.Dial(ctx, opt)
	if err != nil {
		return err
	}
	defer c.Close()
	var svc client.Service
	if service.String() == "" {
		svc, err = c.DiscoverUpload(ctx)
	} else {
		svc, err = c.Service(ctx, service)
	}
	if err != nil {
		return err
	}
	// Refuse before uploading anything: a batch fails whole or not at all.
	for i, name := range files {
		if max := svc.MaxFileSize(); max > 0 && sizes[i] > max {
			return fmt.Errorf("%w: %s is %d bytes to upload; %s accepts at most %d", client.ErrFileTooLarge, name, sizes[i], svc.JID, max)
		}
	}
	delivery := client.Delivery{To: recipients}
	via := ""
	switch {
	case f.direct:
	case svc.Info.HasFeature(client.NSAddress):
		delivery.Relay = svc.JID
		via = " via " + svc.JID.String()
	default:
		fmt.Fprintf(stderr, "mediaslot send: %s does not relay messages (no XEP-0033 in its disco#info); sending to each recipient directly\n", svc.JID)
	}
	for _, name := range files {
		m, err := uploadFile(ctx, c, svc, name, f, stdout)
		if err != nil {
			return err
		}
		if err := c.SendMedia(ctx, m, delivery); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sent %s (%d bytes) to %s%s: %s\n", filepath.Base(name), m.Size, strings.Join(names, ", "), via, m.URL)
	}
	return nil
}

// uploadFile uploads one file and returns the metadata of its message.
func uploadFile(ctx context.Context, c *client.Client, svc client.Service, name string, f sendFlags, stdout io.Writer) (client.Media, error) {
	file, err := os.Open(name)
	if err != nil {
		return client.Media{}, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return client.Media{}, err
	}
	size := st.Size()
	head := make([]byte, 512)
	n, _ := io.ReadFull(file, head)
	m := client.Media{Name: filepath.Base(name), MediaType: mediaType(name, head[:n]), Size: size, Encrypted: f.encrypt}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return client.Media{}, err
	}
	if f.encrypt {
		return uploadEncrypted(ctx, c, svc, file, m, f.aesgcmHTTP, stdout)
	}
	if strings.HasPrefix(m.MediaType, "image/") {
		describeImage(file, &m)
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return client.Media{}, err
		}
	}
	slot, err := c.RequestSlot(ctx, svc.JID, client.File{Name: m.Name, Size: size, ContentType: m.MediaType})
	if err != nil {
		return client.Media{}, err
	}
	sum := sha256.New()
	if err := putFile(ctx, c, slot, io.TeeReader(file, sum), size, m.MediaType, m.Name, stdout); err != nil {
		return client.Media{}, err
	}
	m.URL, m.SHA256 = slot.GetURL, sum.Sum(nil)
	return m, nil
}

// describeImage adds dimensions and a thumbnail; an image Go cannot decode
// is still sent, just without them.
func describeImage(file *os.File, m *client.Media) {
	w, h, err := client.ImageSize(file)
	if err != nil {
		slog.Debug("not an image Go decodes", "file", m.Name, "err", err)
		return
	}
	m.Width, m.Height = w, h
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return
	}
	if th, err := client.MakeThumbnail(file); err == nil {
		m.Thumbnail = &th
	}
}

// uploadEncrypted encrypts the whole file in memory (GCM has no streaming
// form in Go; the size is bounded by max-file-size) and uploads the
// ciphertext under a random name with the extension kept, as
// application/octet-stream: the service learns neither content nor name.
func uploadEncrypted(ctx context.Context, c *client.Client, svc client.Service, file io.Reader, m client.Media, allowHTTP bool, stdout io.Writer) (client.Media, error) {
	plain, err := io.ReadAll(file)
	if err != nil {
		return client.Media{}, err
	}
	key, err := aesgcm.NewKey()
	if err != nil {
		return client.Media{}, err
	}
	sealed, err := key.Seal(plain)
	if err != nil {
		return client.Media{}, err
	}
	remote := aesgcm.RandomName(m.Name)
	const octets = "application/octet-stream"
	slot, err := c.RequestSlot(ctx, svc.JID, client.File{Name: remote, Size: int64(len(sealed)), ContentType: octets})
	if err != nil {
		return client.Media{}, err
	}
	if m.URL, err = key.URL(slot.GetURL, allowHTTP); err != nil {
		return client.Media{}, fmt.Errorf("%v (the service gave %s; --aesgcm-http allows this for test setups)", err, client.RedactURL(slot.GetURL))
	}
	if err := putFile(ctx, c, slot, bytes.NewReader(sealed), int64(len(sealed)), octets, m.Name, stdout); err != nil {
		return client.Media{}, err
	}
	return m, nil
}

// putFile PUTs with a progress display. Any 2xx is success here (XEP-0363
// wants 201; `mediaslot check` reports a 200).
func putFile(ctx context.Context, c *client.Client, slot client.Slot, body io.Reader, size int64, ctype, label string, stdout io.Writer) error {
	progress, done := newProgress(stdout, label, size)
	defer done()
	_, err := c.Upload(ctx, slot, body, size, ctype, progress)
	return err
}

// newProgress shows an upload's progress: a bar on a terminal, otherwise a
// plain line for each quarter reached, which suits logs.
func newProgress(stdout io.Writer, label string, size int64) (progress func(int64), done func()) {
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(stdout),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(stdout) }),
		)
		return func(n int64) { _ = bar.Set64(n) }, func() { _ = bar.Finish() }
	}
	var quarter int64
	return func(n int64) {
		if size <= 0 {
			return
		}
		if q := min(n*4/size, 4); q > quarter {
			quarter = q
			fmt.Fprintf(stdout, "uploading %s: %d%% (%d of %d bytes)\n", label, q*25, n, size)
		}
	}, func() {}
}

// mediaType is the type the extension says, else what the content looks
// like, without parameters.
func mediaType(name string, head []byte) string {
	t := mime.TypeByExtension(strings.ToLower(filepath.Ext(name)))
	if t == "" {
		t = http.DetectContentType(head)
	}
	mt, _, err := mime.ParseMediaType(t)
	if err != nil {
		return "application/octet-stream"
	}
	return mt
}
