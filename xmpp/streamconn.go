package xmpp

import (
	"net"
	"sync"
	"time"
)

// writeTimeout bounds each write to the server.
const writeTimeout = 10 * time.Second

// maxPending bounds the stanzas held back for one write.
const maxPending = 64 << 10

// streamConn is the connection of a component stream. Every write has its
// own deadline, so a server that stops reading cannot block the component
// forever. And stanzas sent while the read loop is busy with what it has
// read are held back until it reads from the socket again: a burst of
// requests is then answered with one write instead of one per stanza (a
// write to loopback costs the sender the receiver's side of TCP too).
// Stanzas sent while the loop waits for input go out at once, so a lone
// request waits for nothing. What is held back is lost if the process
// dies, so only replies are held back (a client asks again); a relay
// delivery, whose queue entry is deleted once it is sent, is written at
// once with sendWritten (and confirmed by the server, see acks).
type streamConn struct {
	net.Conn

	mu      sync.Mutex
	reading bool // the read loop waits for input
	pending []byte
}

func newStreamConn(c net.Conn) *streamConn {
	return &streamConn{Conn: c}
}

// send writes one stanza, or holds it back while the read loop is busy.
// A failed write closes the connection: the stream may hold half a stanza.
func (c *streamConn) send(stanza []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, stanza...)
	if !c.reading && len(c.pending) < maxPending {
		return nil
	}
	return c.flushLocked()
}

// sendWritten writes what is held back and then the stanzas, and returns
// once the bytes are written to the socket.
func (c *streamConn) sendWritten(stanzas ...[]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range stanzas {
		c.pending = append(c.pending, s...)
	}
	return c.flushLocked()
}

// Write is how mellium writes (the stream header and close); what is held
// back goes first.
func (c *streamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.write(p)
}

// Read writes what is held back, then waits for input.
func (c *streamConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.reading = true
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.reading = false
	c.mu.Unlock()
	return n, err
}

func (c *streamConn) flushLocked() error {
	if len(c.pending) == 0 {
		return nil
	}
	_, err := c.write(c.pending)
	c.pending = c.pending[:0]
	if cap(c.pending) > maxPending {
		c.pending = nil // a burst of big stanzas: do not keep the buffer
	}
	if err != nil {
		_ = c.Conn.Close()
	}
	return err
}

func (c *streamConn) write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.Conn.Write(p)
}
