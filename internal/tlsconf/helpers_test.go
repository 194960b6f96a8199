package tlsconf

import (
	"crypto/tls"
	"net"
)

func tlsListen(c *tls.Config) (net.Listener, error) { return tls.Listen("tcp", "127.0.0.1:0", c) }

func handshake(addr string, c *tls.Config) error {
	conn, err := tls.Dial("tcp", addr, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Handshake(); err != nil {
		return err
	}
	// TLS 1.3 reports a refused client certificate on the first read.
	_, _ = conn.Write([]byte("x"))
	buf := make([]byte, 1)
	_, err = conn.Read(buf)
	if err != nil && err.Error() == "EOF" {
		return nil
	}
	return err
}
