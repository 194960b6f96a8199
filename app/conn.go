package app

import (
	"time"

	"github.com/nats-io/nats.go"
)

// natsConn is a connection that drains on close so that nothing buffered is lost.
type natsConn struct {
	*nats.Conn
	acks ackTrust // how the part signs and checks acknowledgements
}

func (c *natsConn) close() {
	done := make(chan struct{})
	c.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := c.Drain(); err != nil {
		c.Close()
		return
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Close()
	}
}
