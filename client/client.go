// Package client is mediaslot's XMPP client side: a c2s login (STARTTLS,
// SASL, resource binding) on mellium.im/xmpp, discovery of a XEP-0363 upload
// service, slot requests, the HTTP upload and download, and the media
// messages that share a file (XEP-0066, XEP-0447/0446/0264, XEP-0231 and,
// through a relay, XEP-0033). The send, receive and check commands are built
// on it; it keeps no state beyond one session.
package client

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// Options configure Dial.
type Options struct {
	JID      jid.JID // the account; a resource part is ignored (the server assigns one)
	Password string
	// Server is the host:port to connect to. Empty means the JID's domain on
	// port 5222; SRV records are not consulted.
	Server string
	// Insecure skips TLS certificate verification, for test servers with
	// self-signed certificates. It applies to the XMPP stream and to HTTP.
	Insecure bool
	// AESGCMOverHTTP fetches aesgcm:// links over plain http instead of
	// https. XEP-0454 links only ever stand for https; test setups without
	// TLS need this.
	AESGCMOverHTTP bool
	// OnMessage, if set, is called with every incoming message that is not
	// an error. It runs on the stream's read loop, so it must not block for
	// long: hand the message to another goroutine.
	OnMessage func(Message)
	Logger    *slog.Logger
}

// DefaultPort is the c2s port used when Options.Server is empty.
const DefaultPort = "5222"

const (
	dialTimeout = 15 * time.Second
	// iqTimeout bounds a request the caller gave no deadline.
	iqTimeout = 30 * time.Second
)

// Client is one logged-in XMPP session.
type Client struct {
	sess           *xmpp.Session
	conn           net.Conn
	jid            jid.JID // full JID bound by the server
	http           *http.Client
	aesgcmOverHTTP bool
	onMessage      func(Message)
	log            *slog.Logger

	served   chan struct{} // closed when the read loop ends
	serveErr error

	mu      sync.Mutex
	pending map[string]chan *StanzaError // message id -> where its error reply goes
}

// Dial connects, negotiates STARTTLS (always: PLAIN is only ever sent
// encrypted), authenticates with SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN (in
// that order of preference), binds a resource and starts reading the stream.
func Dial(ctx context.Context, opt Options) (*Client, error) {
	if opt.JID.Localpart() == "" {
		return nil, fmt.Errorf("%q is not an account JID (user@domain)", opt.JID)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	addr := opt.Server
	if addr == "" {
		addr = net.JoinHostPort(opt.JID.Domainpart(), DefaultPort)
	}
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, addr, err)
	}
	tlsConf := &tls.Config{
		ServerName:         opt.JID.Domainpart(),
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: opt.Insecure, // #nosec G402 -- opt-in for self-signed test servers
	}
	nctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	sess, err := xmpp.NewClientSession(nctx, opt.JID.Bare(), conn,
		xmpp.StartTLS(tlsConf),
		xmpp.SASL("", opt.Password, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, loginError(nctx, addr, err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opt.Insecure} // #nosec G402 -- see Options.Insecure
	c := &Client{
		sess:           sess,
		conn:           conn,
		jid:            sess.LocalAddr(),
		http:           &http.Client{Transport: transport},
		aesgcmOverHTTP: opt.AESGCMOverHTTP,
		onMessage:      opt.OnMessage,
		log:            opt.Logger,
		served:         make(chan struct{}),
		pending:        make(map[string]chan *StanzaError),
	}
	go func() {
		c.serveErr = sess.Serve(xmpp.HandlerFunc(c.handle))
		close(c.served)
	}()
	c.log.Debug("logged in", "jid", c.jid.String(), "server", addr)
	return c, nil
}

// loginError classifies a failed stream negotiation: a SASL <failure/>
// means the server refused the credentials.
func loginError(ctx context.Context, addr string, err error) error {
	if cond, ok := saslFailure(err); ok {
		return fmt.Errorf("%w (%s): %v", ErrAuth, cond, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: logging in at %s: %v", ErrTimeout, addr, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: logging in at %s: %v", ErrTimeout, addr, err)
	}
	return fmt.Errorf("logging in at %s: %w", addr, err)
}

// saslFailure recognises the <failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>
// that mellium returns as an error of an internal type: it marshals itself
// back to that element, from which the condition is read.
func saslFailure(err error) (condition string, ok bool) {
	var m interface {
		error
		TokenReader() xml.TokenReader
	}
	if !errors.As(err, &m) {
		return "", false
	}
	var f struct {
		XMLName   xml.Name
		Condition []struct{ XMLName xml.Name } `xml:",any"`
	}
	if xml.NewTokenDecoder(m.TokenReader()).Decode(&f) != nil || f.XMLName != (xml.Name{Space: nsSASL, Local: "failure"}) {
		return "", false
	}
	for _, c := range f.Condition {
		if c.XMLName.Space == nsSASL {
			return c.XMLName.Local, true
		}
	}
	return "not-authorized", true
}

// JID is the full JID the server bound for this session.
func (c *Client) JID() jid.JID { return c.jid }

// HTTPClient is the client used for uploads and downloads; conformance
// checks use it for their own requests so that Insecure applies to them too.
func (c *Client) HTTPClient() *http.Client { return c.http }

// Close ends the stream politely and waits briefly for the server to close
// its side.
func (c *Client) Close() error {
	err := c.sess.Close()
	select {
	case <-c.served:
	case <-time.After(2 * time.Second):
	}
	if cerr := c.conn.Close(); err == nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	return err
}

// Done is closed when the stream has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.served }

// Err is the reason the stream ended (nil for a clean close), valid after Done.
func (c *Client) Err() error { return c.serveErr }

// handle is the read loop's handler. It only looks at messages: IQ requests
// get mellium's automatic service-unavailable, IQ results reach SendIQ
// before any handler. It never returns an error, which would end the stream.
func (c *Client) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) (err error) {
	if start.Name.Local != "message" {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("panic handling a message", "panic", p, "stack", string(debug.Stack()))
			err = nil
		}
	}()
	var m messageIn
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&m); err != nil {
		c.log.Debug("undecodable message", "err", err)
		return nil
	}
	if m.Type == "error" {
		c.mu.Lock()
		ch := c.pending[m.ID]
		c.mu.Unlock()
		if ch != nil && m.Error != nil {
			se := m.Error.stanzaError()
			se.By = m.From
			select {
			case ch <- se:
			default: // more bounces than addressees: the first ones tell enough
			}
		}
		return nil
	}
	if c.onMessage != nil {
		c.onMessage(m.message())
	}
	return nil
}

// SendPresence announces the session as available, so that the server
// routes messages to it (and releases stored offline messages).
func (c *Client) SendPresence(ctx context.Context) error {
	return c.send(ctx, struct {
		XMLName xml.Name `xml:"presence"`
	}{})
}

// SendUnavailable announces the session as gone before it closes: servers
// that report presences only as clients send them (ejabberd's XEP-0356
// presence forwarding) tell a component of a stream that merely ends nothing.
func (c *Client) SendUnavailable(ctx context.Context) error {
	return c.send(ctx, struct {
		XMLName xml.Name `xml:"presence"`
		Type    string   `xml:"type,attr"`
	}{Type: "unavailable"})
}
