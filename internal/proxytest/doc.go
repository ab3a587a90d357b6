// Package proxytest proves wsreconnect.ProxyTransport, and the
// classification of what proxies answer, against real proxies from
// Debian: tinyproxy (HTTP), squid (HTTP, and HTTPS: TLS to the proxy
// itself), dante-server (SOCKS5) and microsocks (SOCKS5 with a username and
// password). Each test starts its own proxy processes on 127.0.0.1 with
// configuration files it writes to a temporary directory, and stops them.
// Without a proxy's binary the tests that need it skip, except under
// CI=true, where they fail (.ci/run installs them).
package proxytest
