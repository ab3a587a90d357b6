//go:build !js

package wsreconnect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
)

// socksConnect asks the SOCKS5 proxy on conn for a connection to addr
// (host:port), with the username and password of user if it has them
// (RFC 1928, RFC 1929). The proxy resolves the name. It returns pe (or
// an error it wraps) when the proxy refuses.
//
// The standard library's SOCKS5 client is internal to net/http, and
// golang.org/x/net/proxy would be the library's third dependency; the
// exchange is small enough to own.
func socksConnect(conn net.Conn, user *url.Userinfo, addr string, pe *ProxyError) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return pe.withErr(err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return pe.withErr(fmt.Errorf("bad port %q", portStr))
	}

	// Greeting: the methods we offer, 0 (none) and, with credentials, 2
	// (username/password).
	const noAuth, userPass, noAcceptable = 0x00, 0x02, 0xff
	methods := []byte{noAuth}
	if user != nil {
		methods = append(methods, userPass)
	}
	if _, err := conn.Write(append([]byte{5, byte(len(methods))}, methods...)); err != nil {
		return pe.withErr(err)
	}
	var reply [2]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return pe.withErr(err)
	}
	if reply[0] != 5 {
		pe.protocol = fmt.Sprintf("it answered the SOCKS5 greeting with version %d", reply[0])
		return pe
	}
	switch reply[1] {
	case noAuth:
	case userPass:
		if user == nil {
			pe.protocol = "it chose username/password authentication, which was not offered"
			return pe
		}
		if err := socksAuthenticate(conn, user, pe); err != nil {
			return err
		}
	case noAcceptable:
		pe.socksAuth = true
		return pe
	default:
		pe.protocol = fmt.Sprintf("it chose authentication method %d, which was not offered", reply[1])
		return pe
	}

	// CONNECT to the address, a name when it is one.
	req := []byte{5, 1, 0}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Unmap().Is4() {
			req = append(append(req, 1), ip.Unmap().AsSlice()...)
		} else {
			req = append(append(req, 4), ip.AsSlice()...)
		}
	} else {
		if len(host) > 255 {
			return pe.withErr(errors.New("host name longer than 255 bytes"))
		}
		req = append(append(req, 3, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := conn.Write(req); err != nil {
		return pe.withErr(err)
	}
	// The reply: VER REP RSV ATYP BND.ADDR BND.PORT, read in full so that
	// nothing of it is left for the tunnel.
	var head [4]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return pe.withErr(err)
	}
	if head[0] != 5 {
		pe.protocol = fmt.Sprintf("it answered CONNECT with version %d", head[0])
		return pe
	}
	if head[1] != 0 {
		pe.SOCKSReply = int(head[1])
		return pe
	}
	var n int
	switch head[3] {
	case 1:
		n = net.IPv4len
	case 4:
		n = net.IPv6len
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return pe.withErr(err)
		}
		n = int(l[0])
	default:
		pe.protocol = fmt.Sprintf("its reply has address type %d", head[3])
		return pe
	}
	if _, err := io.ReadFull(conn, make([]byte, n+2)); err != nil {
		return pe.withErr(err)
	}
	return nil
}

// socksAuthenticate sends user's name and password (RFC 1929).
func socksAuthenticate(conn net.Conn, user *url.Userinfo, pe *ProxyError) error {
	name := user.Username()
	pass, _ := user.Password()
	if len(name) > 255 || len(pass) > 255 {
		return pe.withErr(errors.New("SOCKS5 username or password longer than 255 bytes"))
	}
	msg := append([]byte{1, byte(len(name))}, name...)
	msg = append(append(msg, byte(len(pass))), pass...)
	if _, err := conn.Write(msg); err != nil {
		return pe.withErr(err)
	}
	var status [2]byte
	if _, err := io.ReadFull(conn, status[:]); err != nil {
		return pe.withErr(err)
	}
	if status[1] != 0 {
		pe.socksAuth = true
		return pe
	}
	return nil
}
