// Package connlimit bounds the connections an HTTP listener holds, in total
// and per client address, and remembers its accept errors.
//
// golang.org/x/net/netutil.LimitListener bounds the total by blocking in
// Accept: the connections past it wait in the kernel's backlog with no
// answer until they time out, and one address can take every place. This
// Listener accepts them and answers 503 at once, so that a client learns
// why, and keeps one address from taking more than its share.
package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits are the bounds of a Listener; 0 turns one off.
type Limits struct {
	Total   int // connections open at once
	PerAddr int // of them from one IPv4 address or one IPv6 /64
	// Answer503 answers refused connections with a plain HTTP 503 before
	// closing them. Leave it off under TLS: a TLS client could not read it,
	// and the connection is only closed.
	Answer503 bool
}

// Stats is what a Listener counts.
type Stats struct {
	Open           int    // connections open now
	RefusedTotal   uint64 // connections refused because Limits.Total were open
	RefusedPerAddr uint64 // connections refused because their address had Limits.PerAddr open
	AcceptErrors   uint64 // failed accepts ("accept4: too many open files")
	AcceptFailing  error  // the last accept error, while accepting fails; nil once one succeeds
}

// Listener wraps a net.Listener with Limits. Its connections must be
// closed (http.Server does) for their places to be free again.
type Listener struct {
	net.Listener
	lim Limits

	mu      sync.Mutex
	open    int
	perAddr map[netip.Addr]int
	failErr error

	refusedTotal, refusedPerAddr, acceptErrors atomic.Uint64
	answering                                  chan struct{} // a place per refusal being answered
}

// maxAnswering bounds the refused connections being answered at once;
// past it, they are closed without an answer.
const maxAnswering = 32

// answerTimeout bounds the time a refused connection is kept to answer it.
const answerTimeout = time.Second

// New wraps ln.
func New(ln net.Listener, lim Limits) *Listener {
	return &Listener{Listener: ln, lim: lim, perAddr: map[netip.Addr]int{}, answering: make(chan struct{}, maxAnswering)}
}

// Accept returns the next connection within the limits, refusing those
// past them meanwhile. An accept error is counted, remembered until an
// accept succeeds, and returned, so that http.Server backs off and retries.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.acceptErrors.Add(1)
				l.mu.Lock()
				l.failErr = err
				l.mu.Unlock()
			}
			return nil, err
		}
		key := addrKey(c.RemoteAddr())
		l.mu.Lock()
		l.failErr = nil
		var refused *atomic.Uint64
		var why string
		switch {
		case l.lim.Total > 0 && l.open >= l.lim.Total:
			refused, why = &l.refusedTotal, "the server has too many connections"
		case l.lim.PerAddr > 0 && l.perAddr[key] >= l.lim.PerAddr:
			refused, why = &l.refusedPerAddr, "too many connections from your address (at most "+strconv.Itoa(l.lim.PerAddr)+")"
		default:
			l.open++
			l.perAddr[key]++
		}
		l.mu.Unlock()
		if refused == nil {
			return &conn{Conn: c, l: l, key: key}, nil
		}
		refused.Add(1)
		l.refuse(c, why)
	}
}

// refuse answers c 503 (with Answer503) and closes it, without holding up
// Accept: the answer goes out from a goroutine of its own, at most
// maxAnswering at once, each for at most answerTimeout.
func (l *Listener) refuse(c net.Conn, why string) {
	if !l.lim.Answer503 {
		c.Close()
		return
	}
	select {
	case l.answering <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.answering }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(answerTimeout))
		body := why + "; try again later\n"
		_, err := io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
			"Retry-After: 10\r\nConnection: close\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		if err != nil {
			return
		}
		// Close only once the client's request is read (or the time is
		// up): closing with unread bytes sends a reset, which can destroy
		// the answer before the client reads it.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// Stats returns the counts so far.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{
		Open:           l.open,
		RefusedTotal:   l.refusedTotal.Load(),
		RefusedPerAddr: l.refusedPerAddr.Load(),
		AcceptErrors:   l.acceptErrors.Load(),
		AcceptFailing:  l.failErr,
	}
}

func (l *Listener) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perAddr[key]--; l.perAddr[key] <= 0 {
		delete(l.perAddr, key)
	}
}

// addrKey is the address a connection counts against: its IPv4 address,
// or the /64 of its IPv6 address (one subscriber's usual share).
func addrKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// conn frees its place in the Listener when it is first closed.
type conn struct {
	net.Conn
	l    *Listener
	key  netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}

// ReadFrom lets http.Server send files with sendfile, as it does on a
// *net.TCPConn.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite lets http.Server half-close the connection (a FIN before the
// close) after refusing a body, as it does on a *net.TCPConn.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// reservedFiles are the open files kept for everything but connections:
// the refused connections being answered (maxAnswering), the database, the
// XMPP link, the admin listener and its connections, logs.
const reservedFiles = 64

// FitOpenFiles lowers total, if need be, so that total connections with a
// file each (a download's or an upload's) stay within the limit on open
// files, which is openFiles; it returns total unchanged when it fits or
// is 0 (off).
func FitOpenFiles(total int, openFiles uint64) int {
	if total <= 0 || openFiles == 0 {
		return total
	}
	fit := max(1, (int(min(openFiles, 1<<30))-reservedFiles)/2)
	return min(total, fit)
}
