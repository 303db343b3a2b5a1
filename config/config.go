// Package config reads mediaslot's TOML configuration file.
//
// Every key has a safe default (see Default and mediaslot.example.toml, which a
// test keeps equal), so an operator only writes what differs. Secrets may also
// come from the environment or from files, so they need not sit in a file that
// is readable by everyone who can read the config.
package config

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mediaslot/internal/fsync"

	"github.com/pelletier/go-toml/v2"
)

// Environment variables that override secrets from the file.
const (
	EnvComponentSecret = "MEDIASLOT_COMPONENT_SECRET"
	EnvTokenKey        = "MEDIASLOT_TOKEN_KEY"
	EnvS3Secret        = "MEDIASLOT_S3_SECRET_ACCESS_KEY"
	EnvDataPassword    = "MEDIASLOT_DATA_PASSWORD"
)

// Config is the whole configuration of `mediaslot serve`.
type Config struct {
	Component Component `toml:"component"`
	HTTP      HTTP      `toml:"http"`
	Upload    Upload    `toml:"upload"`
	Relay     Relay     `toml:"relay"`
	Store     Store     `toml:"store"`
	Data      Data      `toml:"data"`
	Log       Log       `toml:"log"`
	Admin     Admin     `toml:"admin"`
}

// Component is the XEP-0114 link to the XMPP server.
type Component struct {
	JID          string   `toml:"jid"`
	Server       string   `toml:"server"`
	Secret       string   `toml:"secret"`
	SecretFile   string   `toml:"secret_file"`
	ReconnectMax Duration `toml:"reconnect_max"`
}

// HTTP is mediaslot's own HTTP listener (uploads to the disk store, downloads).
type HTTP struct {
	Listen      string   `toml:"listen"`
	PublicURL   string   `toml:"public_url"`
	TLSCert     string   `toml:"tls_cert"`
	TLSKey      string   `toml:"tls_key"`
	CORSOrigins []string `toml:"cors_origins"`
	// MaxConnections bounds the connections open at once, and
	// MaxConnectionsPerAddress those from one IPv4 address or IPv6 /64;
	// past them a connection is answered 503. 0 turns a bound off.
	MaxConnections           int `toml:"max_connections"`
	MaxConnectionsPerAddress int `toml:"max_connections_per_address"`
}

// Upload is the slot policy.
type Upload struct {
	MaxFileSize       int64    `toml:"max_file_size"`
	SlotLifetime      Duration `toml:"slot_lifetime"`
	FileLifetime      Duration `toml:"file_lifetime"`
	AllowedDomains    []string `toml:"allowed_domains"`
	AllowedJIDs       []string `toml:"allowed_jids"`
	DeniedDomains     []string `toml:"denied_domains"`
	DeniedJIDs        []string `toml:"denied_jids"`
	DailyQuota        int64    `toml:"daily_quota"`
	UserQuota         int64    `toml:"user_quota"`
	DomainQuota       int64    `toml:"domain_quota"`
	TotalQuota        int64    `toml:"total_quota"`
	SlotRate          float64  `toml:"slot_rate"`
	SlotBurst         int      `toml:"slot_burst"`
	MaxUploadsPerUser int      `toml:"max_uploads_per_user"`
	TokenKey          string   `toml:"token_key"`
	TokenKeyFile      string   `toml:"token_key_file"`
}

// Relay is the offline media relay (XEP-0033 messages to the component).
type Relay struct {
	Enabled          bool     `toml:"enabled"`
	RecipientDomains []string `toml:"recipient_domains"`
	MaxStanzaSize    int      `toml:"max_stanza_size"`
	MaxBoBSize       int      `toml:"max_bob_size"`
	MaxRecipients    int      `toml:"max_recipients"`
	MaxMessages      int      `toml:"max_messages"`
	MaxBytes         int64    `toml:"max_bytes"`
	TTL              Duration `toml:"ttl"`
	// The caps against storage abuse (offline.Limits says what each counts).
	SenderShare       float64  `toml:"sender_share"`
	MaxSenderMessages int      `toml:"max_sender_messages"`
	MaxSenderBytes    int64    `toml:"max_sender_bytes"`
	MaxTotalMessages  int      `toml:"max_total_messages"`
	MaxTotalBytes     int64    `toml:"max_total_bytes"`
	UnseenTTL         Duration `toml:"unseen_ttl"`
	MaxUnseenMessages int      `toml:"max_unseen_messages"`
	MaxUnseenBytes    int64    `toml:"max_unseen_bytes"`
}

// Store selects and configures the blob store.
type Store struct {
	Type          string   `toml:"type"`
	Dir           string   `toml:"dir"`
	CheckInterval Duration `toml:"check_interval"`
	S3            S3       `toml:"s3"`
}

// S3 configures the S3 store: clients upload to the bucket with presigned
// URLs and download through mediaslot's stable URLs.
type S3 struct {
	Endpoint        string   `toml:"endpoint"`
	Region          string   `toml:"region"`
	Bucket          string   `toml:"bucket"`
	Prefix          string   `toml:"prefix"`
	PathStyle       bool     `toml:"path_style"`
	AccessKeyID     string   `toml:"access_key_id"`
	SecretAccessKey string   `toml:"secret_access_key"`
	Download        string   `toml:"download"`
	PublicURL       string   `toml:"public_url"`
	URLLifetime     Duration `toml:"url_lifetime"`
	CORSOrigins     []string `toml:"cors_origins"`
}

// Data is where mediaslot keeps its own state: the token key in Dir, and
// the slot records, quota accounting and relay queue in the backend, a
// bbolt file in Dir or the PostgreSQL database of DSN.
type Data struct {
	Dir     string `toml:"dir"`
	Backend string `toml:"backend"`
	// DSN names the PostgreSQL database; the password is best kept out
	// of it, in Password (from PasswordFile or EnvDataPassword), which
	// ConnString puts in.
	DSN          string `toml:"dsn"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
}

// The data backends of Data.Backend.
const (
	BackendBbolt    = "bbolt"
	BackendPostgres = "postgres"
)

// ConnString is the DSN with the password put in (when one is set apart),
// for pgx: in the URL's user part, or as a password=... pair. A URL that
// does not parse, or a password both in the DSN and apart, is an error.
func (d Data) ConnString() (string, error) {
	if !isURLDSN(d.DSN) {
		if d.Password == "" {
			return d.DSN, nil
		}
		// key=value pairs: a later key overrides an earlier one; the
		// value is quoted, with \ and ' escaped.
		q := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(d.Password)
		return strings.TrimSpace(d.DSN) + " password='" + q + "'", nil
	}
	u, err := url.Parse(d.DSN)
	if err != nil {
		return "", fmt.Errorf("data.dsn is not a valid URL: %v", redactURLError(err))
	}
	if d.Password == "" {
		return d.DSN, nil
	}
	if u.User == nil || u.User.Username() == "" {
		return "", fmt.Errorf("data.dsn names no user (postgres://USER@HOST/DATABASE) for the password of data.password, password_file or %s", EnvDataPassword)
	}
	if _, has := u.User.Password(); has {
		return "", fmt.Errorf("data.dsn has a password and data.password (or password_file, %s) another: keep one, preferably outside dsn", EnvDataPassword)
	}
	u.User = url.UserPassword(u.User.Username(), d.Password)
	return u.String(), nil
}

func isURLDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// redactURLError is a *url.Error without the URL, which may hold a password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Admin is the admin HTTP listener: /metrics (Prometheus), /healthz and
// /readyz, and with Pprof Go's profiler under /debug/pprof/, so that an
// operator can profile mediaslot under its real load. It is off when
// Listen is empty.
type Admin struct {
	Listen string `toml:"listen"`
	Pprof  bool   `toml:"pprof"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Duration is a time.Duration written as a Go duration string ("5m", "30s").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Default returns the configuration used for every key the file leaves out.
// It matches the demo stack: Prosody's component port on loopback, upload.localhost.
func Default() Config {
	return Config{
		Component: Component{
			JID:          "upload.localhost",
			Server:       "127.0.0.1:5347",
			ReconnectMax: Duration(2 * time.Second),
		},
		HTTP: HTTP{
			Listen:      "127.0.0.1:5050",
			PublicURL:   "http://127.0.0.1:5050",
			CORSOrigins: []string{"*"},

			MaxConnections:           1000,
			MaxConnectionsPerAddress: 64,
		},
		Upload: Upload{
			MaxFileSize:       100 << 20,
			SlotLifetime:      Duration(5 * time.Minute),
			FileLifetime:      Duration(7 * 24 * time.Hour),
			AllowedDomains:    []string{},
			AllowedJIDs:       []string{},
			DeniedDomains:     []string{},
			DeniedJIDs:        []string{},
			DailyQuota:        1 << 30,
			UserQuota:         10 << 30,
			SlotRate:          10,
			SlotBurst:         100,
			MaxUploadsPerUser: 4,
		},
		Relay: Relay{
			Enabled:          true,
			RecipientDomains: []string{},
			MaxStanzaSize:    64 << 10,
			MaxBoBSize:       8 << 10,
			MaxRecipients:    64,
			MaxMessages:      1000,
			MaxBytes:         64 << 20,
			TTL:              Duration(30 * 24 * time.Hour),
			// caps against storage abuse
			SenderShare:       0.25,
			MaxSenderMessages: 4096,
			MaxSenderBytes:    128 << 20,
			MaxTotalMessages:  100_000,
			MaxTotalBytes:     1 << 30,
			UnseenTTL:         Duration(24 * time.Hour),
			MaxUnseenMessages: 2000,
			MaxUnseenBytes:    32 << 20,
		},
		Store: Store{Type: "disk", Dir: "data/files", CheckInterval: Duration(30 * time.Second), S3: S3{
			Region:      "us-east-1",
			Download:    "redirect",
			URLLifetime: Duration(time.Minute),
			CORSOrigins: []string{},
		}},
		Data:  Data{Dir: "data", Backend: BackendBbolt},
		Log:   Log{Level: "info", Format: "text"},
		Admin: Admin{Listen: ""},
	}
}

// Load reads the file at path over the defaults, applies the environment and
// validates the result. Relative directories are resolved against the
// directory of the config file, so a config works from any working directory.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	base := filepath.Dir(path)
	for _, p := range []*string{&c.Store.Dir, &c.Data.Dir, &c.Component.SecretFile, &c.Upload.TokenKeyFile, &c.Data.PasswordFile, &c.HTTP.TLSCert, &c.HTTP.TLSKey} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if err := c.loadSecrets(); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Parse decodes a TOML document over the defaults. Unknown keys are errors:
// a misspelt key silently falling back to a default is worse than a refusal.
func Parse(b []byte) (Config, error) {
	c := Default()
	d := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return Config{}, unknownKeys(sm)
		}
		return Config{}, err
	}
	return c, nil
}

// loadSecrets fills secrets from the environment (first) or secret files.
func (c *Config) loadSecrets() error {
	var err error
	c.Component.Secret, err = secret(c.Component.Secret, EnvComponentSecret, c.Component.SecretFile)
	if err != nil {
		return err
	}
	if c.Upload.TokenKey, err = secret(c.Upload.TokenKey, EnvTokenKey, c.Upload.TokenKeyFile); err != nil {
		return err
	}
	if c.Store.S3.SecretAccessKey, err = secret(c.Store.S3.SecretAccessKey, EnvS3Secret, ""); err != nil {
		return err
	}
	c.Data.Password, err = secret(c.Data.Password, EnvDataPassword, c.Data.PasswordFile)
	return err
}

func secret(v, env, file string) (string, error) {
	if e := os.Getenv(env); e != "" {
		return e, nil
	}
	if file != "" {
		b, err := readSecretFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	return v, nil
}

// maxSecretFile bounds a secret file: a file that never ends, such as
// /dev/urandom taken for a way to make a key, was read until memory ran out.
const maxSecretFile = 64 << 10

func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("the secret file %s is longer than %d KiB, which no secret is (a device such as /dev/urandom?): put the secret itself in a file (`openssl rand -hex 32 > file` makes one)", path, maxSecretFile>>10)
	}
	return b, nil
}

// Validate reports the first setting that cannot work, in words an operator can act on.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Component.JID == "" || strings.ContainsAny(c.Component.JID, "@/") {
		bad("component.jid %q must be a bare domain such as upload.example.net", c.Component.JID)
	}
	if _, _, err := net.SplitHostPort(c.Component.Server); err != nil {
		bad("component.server %q must be host:port of the XMPP server's component port", c.Component.Server)
	}
	if c.Component.Secret == "" {
		bad("component.secret is empty: set it, component.secret_file or %s", EnvComponentSecret)
	}
	if c.Component.ReconnectMax <= 0 {
		bad("component.reconnect_max must be positive")
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen %q must be host:port", c.HTTP.Listen)
	}
	if u, err := url.Parse(c.HTTP.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("http.public_url %q must be an absolute http(s) URL", c.HTTP.PublicURL)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		bad("http.tls_cert and http.tls_key must be set together")
	}
	if c.HTTP.MaxConnections < 0 || c.HTTP.MaxConnectionsPerAddress < 0 {
		bad("http.max_connections and http.max_connections_per_address must not be negative (0 turns a bound off)")
	}
	if c.Upload.MaxFileSize <= 0 {
		bad("upload.max_file_size must be positive")
	}
	if c.Upload.FileLifetime < 0 || c.Upload.DailyQuota < 0 || c.Upload.UserQuota < 0 || c.Upload.DomainQuota < 0 || c.Upload.TotalQuota < 0 ||
		c.Upload.SlotRate < 0 || c.Upload.SlotBurst < 0 || c.Upload.MaxUploadsPerUser < 0 {
		bad("upload.file_lifetime, the quotas, slot_rate, slot_burst and max_uploads_per_user must not be negative (0 turns a limit off)")
	}
	if c.Upload.SlotLifetime < Duration(10*time.Second) {
		bad("upload.slot_lifetime must be at least 10s (clients need time to start the PUT)")
	}
	if c.Relay.MaxStanzaSize <= 0 || c.Relay.MaxBoBSize <= 0 || c.Relay.MaxRecipients <= 0 || c.Relay.MaxMessages <= 0 || c.Relay.MaxBytes <= 0 || c.Relay.TTL <= 0 {
		bad("relay limits (max_stanza_size, max_bob_size, max_recipients, max_messages, max_bytes, ttl) must be positive")
	}
	if r := c.Relay; r.MaxSenderMessages <= 0 || r.MaxSenderBytes <= 0 || r.MaxTotalMessages <= 0 || r.MaxTotalBytes <= 0 ||
		r.UnseenTTL <= 0 || r.MaxUnseenMessages <= 0 || r.MaxUnseenBytes <= 0 {
		bad("relay caps (max_sender_messages, max_sender_bytes, max_total_messages, max_total_bytes, unseen_ttl, max_unseen_messages, max_unseen_bytes) must be positive")
	}
	if !(c.Relay.SenderShare > 0 && c.Relay.SenderShare <= 1) {
		bad("relay.sender_share must be more than 0 and at most 1")
	}
	if c.Store.CheckInterval < Duration(100*time.Millisecond) {
		bad("store.check_interval must be at least 100ms")
	}
	switch c.Store.Type {
	case "disk":
		if c.Store.Dir == "" {
			bad("store.dir must be set for the disk store")
		}
	case "s3":
		s3 := c.Store.S3
		if s3.Bucket == "" {
			bad("store.s3.bucket must be set for the S3 store")
		}
		if (s3.AccessKeyID == "") != (s3.SecretAccessKey == "") {
			bad("store.s3.access_key_id and secret_access_key (or %s) go together; leave both empty to use the AWS default credential chain", EnvS3Secret)
		}
		switch s3.Download {
		case "redirect", "proxy":
		case "public":
			if u, err := url.Parse(s3.PublicURL); err != nil || u.Host == "" {
				bad("store.s3.public_url must be the absolute URL objects are served from when download = \"public\"")
			}
		default:
			bad("store.s3.download %q must be redirect, proxy or public", s3.Download)
		}
		if s3.URLLifetime < Duration(time.Second) {
			bad("store.s3.url_lifetime must be at least 1s")
		}
	default:
		bad("store.type %q is unknown (known: disk, s3)", c.Store.Type)
	}
	if c.Data.Dir == "" {
		bad("data.dir must be set")
	}
	switch c.Data.Backend {
	case BackendBbolt:
		if c.Data.DSN != "" {
			bad("data.dsn is set but data.backend is %q: set backend = %q to use PostgreSQL, or remove dsn", BackendBbolt, BackendPostgres)
		}
	case BackendPostgres:
		if c.Data.DSN == "" {
			bad("data.dsn must name the PostgreSQL database for backend = %q, e.g. postgres://mediaslot@db.example.net:5432/mediaslot?sslmode=verify-full", BackendPostgres)
		} else if _, err := c.Data.ConnString(); err != nil {
			bad("%v", err)
		}
	default:
		bad("data.backend %q is unknown (known: %s, %s)", c.Data.Backend, BackendBbolt, BackendPostgres)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format %q must be text or json", c.Log.Format)
	}
	if c.Admin.Pprof && c.Admin.Listen == "" {
		bad("admin.pprof needs admin.listen: the profiler is served on the admin listener")
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			bad("admin.listen %q must be host:port, or empty to turn the admin listener off", c.Admin.Listen)
		} else if c.Admin.Listen == c.HTTP.Listen {
			bad("admin.listen must differ from http.listen (%s)", c.HTTP.Listen)
		}
	}
	return errors.Join(errs...)
}

// ServerDomain is the domain of the XMPP server the component hangs off:
// the component JID without its first label (upload.example.net -> example.net).
func (c Config) ServerDomain() string {
	if _, rest, ok := strings.Cut(c.Component.JID, "."); ok && rest != "" {
		return rest
	}
	return c.Component.JID
}

// Domains returns the domains whose users may request slots.
func (c Config) Domains() []string {
	if len(c.Upload.AllowedDomains) > 0 {
		return c.Upload.AllowedDomains
	}
	return []string{c.ServerDomain()}
}

// RelayRecipientDomains returns the domains whose users the relay delivers to.
func (c Config) RelayRecipientDomains() []string {
	if len(c.Relay.RecipientDomains) > 0 {
		return c.Relay.RecipientDomains
	}
	return []string{c.ServerDomain()}
}

// MinTokenKey is the shortest HMAC key for slot tokens mediaslot accepts, in
// bytes: as long as the HMAC-SHA256 output, and as the key it makes itself. A
// shorter one, such as the empty token.key a crash between creating and
// writing it left, makes upload tokens forgeable.
const MinTokenKey = 32

// TokenKeyPath is the file that keeps the key when none is configured.
func (c Config) TokenKeyPath() string { return filepath.Join(c.Data.Dir, "token.key") }

// LoadTokenKey returns the configured key, or else the key file's, without
// creating one: the error wraps fs.ErrNotExist when there is neither, and says
// what to do when the key is shorter than MinTokenKey. An empty
// upload.token_key_file is a key too short, not the absence of one.
func (c Config) LoadTokenKey() ([]byte, error) {
	if k := c.Upload.TokenKey; k != "" || c.Upload.TokenKeyFile != "" {
		if len(k) < MinTokenKey {
			return nil, fmt.Errorf("the token key is %d bytes; it must be at least %d (upload.token_key, upload.token_key_file or %s; `openssl rand -hex 32` makes one)",
				len(k), MinTokenKey, EnvTokenKey)
		}
		return []byte(k), nil
	}
	return readTokenKey(c.TokenKeyPath())
}

func readTokenKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < MinTokenKey {
		return nil, fmt.Errorf("%s has %d bytes; a token key has %d: it was left incomplete (a crash while it was written?). "+
			"Delete it and mediaslot makes a new one (upload URLs handed out before then stop working)", path, len(b), MinTokenKey)
	}
	return b, nil
}

// TokenKeyBytes returns the HMAC key for slot tokens. Without a configured key
// it reads (or creates once, mode 0600) data.dir/token.key, so URLs issued
// before a restart stay valid after it.
func (c Config) TokenKeyBytes() ([]byte, error) {
	k, err := c.LoadTokenKey()
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	return createTokenKey(c.Data.Dir, c.TokenKeyPath())
}

// createTokenKey writes a new random key to path so that path, once it
// exists, holds a whole key: the key goes to a temporary file, synced, which
// then gets its name by a hard link. Unlike a rename, the link fails when path
// exists: of two starts at once, both use the key of the first. The directory
// is synced last, so that the name survives a crash.
func createTokenKey(dir, path string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".token.key-*") // mode 0600
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	k := make([]byte, MinTokenKey)
	_, _ = rand.Read(k) // crypto/rand.Read does not fail
	_, err = f.Write(k)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("writing a new token key in %s: %w", dir, err)
	}
	if err := os.Link(f.Name(), path); errors.Is(err, fs.ErrExist) {
		return readTokenKey(path) // another start made it first
	} else if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	return k, fsync.Dir(dir)
}

// unknownKeys names the unknown keys and their lines. It does not quote the
// lines: a misspelt secret key would put the secret into the error, and so
// into logs.
func unknownKeys(sm *toml.StrictMissingError) error {
	var keys []string
	for _, e := range sm.Errors {
		row, _ := e.Position()
		keys = append(keys, fmt.Sprintf("%s (line %d)", strings.Join(e.Key(), "."), row))
	}
	return fmt.Errorf("unknown key: %s", strings.Join(keys, ", "))
}
