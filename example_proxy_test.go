//go:build !js

package wsreconnect_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"

	"github.com/coder/websocket"
	"github.com/wsreconnect/wsreconnect"
)

// Behind a proxy: one http.Client on a ProxyTransport, shared by every
// attempt. With no field set it takes the proxy from the environment
// (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), read at each attempt.
// Here it names the proxy itself, keeps the application's own TLS
// settings for the server, and trusts the proxy's certificate (an
// https:// proxy: TLS to the proxy, then CONNECT).
func ExampleProxyTransport() {
	corporateCAs := x509.NewCertPool() // the proxy's CA
	proxy, _ := url.Parse("https://user:password@proxy.corp.example:3129")
	client := &http.Client{Transport: &wsreconnect.ProxyTransport{
		Base:           &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13}},
		Proxy:          http.ProxyURL(proxy),
		ProxyTLSConfig: &tls.Config{RootCAs: corporateCAs},
	}}
	c, err := wsreconnect.Dial(context.Background(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, "ws://feed.example/prices", &websocket.DialOptions{HTTPClient: client})
	})
	if err != nil {
		var pe *wsreconnect.ProxyError
		if errors.As(err, &pe) {
			log.Fatalf("the proxy %s refused: %v", pe.Proxy, err)
		}
		log.Fatal(err)
	}
	defer c.CloseNow()
}

// A proxy that wants credentials the proxy URL does not have: the client
// stops at once, and the error names the proxy and what it wants. (The
// proxy here is a stand-in on 127.0.0.1 that answers every CONNECT so.)
func ExampleProxyError() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			http.ReadRequest(bufio.NewReader(conn))
			io.WriteString(conn, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n\r\n")
			conn.Close()
		}
	}()

	proxy := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	client := &http.Client{Transport: &wsreconnect.ProxyTransport{Proxy: http.ProxyURL(proxy)}}
	_, err = wsreconnect.Dial(context.Background(), func(ctx context.Context) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, "wss://feed.example/prices", &websocket.DialOptions{HTTPClient: client})
	})
	var pe *wsreconnect.ProxyError
	if errors.As(err, &pe) {
		fmt.Println("status:", pe.StatusCode)
		fmt.Println("asks for:", pe.Header.Get("Proxy-Authenticate"))
		fmt.Println("proxy named:", pe.Proxy == proxy.String())
	}
	// Output:
	// status: 407
	// asks for: Basic realm="corp"
	// proxy named: true
}
