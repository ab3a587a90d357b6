package proxytest

// The proxies under test: real daemons from Debian, each started in the
// foreground, in a process group of its own (so that stopping it ends
// every process it forked), listening on a free port of 127.0.0.1, with a
// configuration file written to the test's temporary directory.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// inCI reports whether the tests run under CI (CI=true), where a missing
// proxy fails the run instead of skipping.
func inCI() bool { return os.Getenv("CI") == "true" }

// binary finds a daemon's executable, also in the sbin directories that a
// non-root PATH lacks. Without it the test skips, or fails under CI.
func binary(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if inCI() {
		t.Fatalf("%s not found under CI=true (.ci/run installs Debian's %s)", name, pkg)
	}
	t.Skipf("%s not found: apt-get install %s", name, pkg)
	return ""
}

// freePort returns a port of 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// workDir returns a directory for a daemon's files that a daemon which
// drops root for its own user (squid runs as proxy, dante as nobody) can
// still read.
func workDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's parent, the test's own directory, is private too.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// daemon is one proxy process, which the test can stop and start again on
// the same port.
type daemon struct {
	t    *testing.T
	name string
	args []string
	addr string // 127.0.0.1:port

	mu   sync.Mutex
	out  bytes.Buffer // everything it printed, for a failing test
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// startDaemon starts bin with args, waits until it accepts connections on
// addr, and stops it when the test ends.
func startDaemon(t *testing.T, bin, addr string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, name: filepath.Base(bin), args: append([]string{bin}, args...), addr: addr}
	d.start()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("%s's output:\n%s", d.name, d.output())
		}
	})
	return d
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.Write(p)
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// start runs the daemon and waits, polling, until it accepts a connection
// on its address; it fails the test if the daemon exits first or is not
// up within 15 s.
func (d *daemon) start() {
	d.t.Helper()
	cmd := exec.Command(d.args[0], d.args[1:]...)
	cmd.Stdout, cmd.Stderr = d, d
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("starting %s: %v", d.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	d.cmd, d.done = cmd, done
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			d.t.Fatalf("%s exited at start (%v):\n%s", d.name, cmd.ProcessState, d.output())
		default:
		}
		c, err := net.DialTimeout("tcp", d.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			d.stop()
			d.t.Fatalf("%s does not accept connections on %s: %v\n%s", d.name, d.addr, err, d.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the daemon's process group at once, as a crash would, and
// waits for the daemon to exit.
func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
	d.cmd = nil
}

// tinyproxy runs Debian's tinyproxy with the given extra configuration
// lines (BasicAuth, ConnectPort, Timeout, ...).
func tinyproxy(t *testing.T, conf ...string) *daemon {
	t.Helper()
	bin := binary(t, "tinyproxy", "tinyproxy")
	port := freePort(t)
	dir := workDir(t)
	cfg := writeFile(t, dir, "tinyproxy.conf", fmt.Sprintf(
		"Port %d\nListen 127.0.0.1\nMaxClients 64\nLogLevel Connect\n%s\n", port, strings.Join(conf, "\n")))
	// -d: stay in the foreground, logging to stderr.
	return startDaemon(t, bin, fmt.Sprintf("127.0.0.1:%d", port), "-d", "-c", cfg)
}

// squidProxy is squid listening for plain HTTP (addr) and for TLS to the
// proxy itself (tlsAddr, with a certificate that ca signs).
type squidProxy struct {
	*daemon
	tlsAddr string
	ca      *x509.CertPool
}

// squid runs Debian's squid as a forward proxy that allows CONNECT to any
// port of 127.0.0.1 and of hosts (names it resolves to 127.0.0.1 through
// its own hosts file, so that a test can use a host name that the client
// does not take for loopback), with no cache, no logs but its important messages on stderr,
// and no DNS server but 127.0.0.1.
func squid(t *testing.T, hosts ...string) *squidProxy {
	t.Helper()
	bin := binary(t, "squid", "squid")
	port, tlsPort := freePort(t), freePort(t)
	dir := workDir(t)
	certFile, keyFile, ca := selfSigned(t, dir)
	var hostLines strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&hostLines, "127.0.0.1 %s\n", h)
	}
	hostsFile := writeFile(t, dir, "hosts", hostLines.String())
	cfg := writeFile(t, dir, "squid.conf", fmt.Sprintf(`http_port 127.0.0.1:%d
https_port 127.0.0.1:%d tls-cert=%s tls-key=%s
http_access allow all
cache deny all
access_log none
cache_log /dev/null
pid_filename none
pinger_enable off
shutdown_lifetime 0 seconds
hosts_file %s
dns_nameservers 127.0.0.1
coredump_dir %s
`, port, tlsPort, certFile, keyFile, hostsFile, dir))
	// -N: no daemon, in the foreground; -d 1: its important messages to
	// stderr (it could not open /dev/stderr again once it has dropped
	// root for its own user).
	d := startDaemon(t, bin, fmt.Sprintf("127.0.0.1:%d", port), "-N", "-d", "1", "-f", cfg)
	s := &squidProxy{daemon: d, tlsAddr: fmt.Sprintf("127.0.0.1:%d", tlsPort), ca: ca}
	waitListening(t, s.tlsAddr)
	return s
}

// waitListening waits, polling, until addr accepts a connection.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing accepts connections on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dante runs Debian's dante-server (danted), a SOCKS5 proxy without
// authentication, with the given rules before the one that lets
// 127.0.0.0/8 reach 127.0.0.0/8.
func dante(t *testing.T, rules ...string) *daemon {
	t.Helper()
	bin := binary(t, "danted", "dante-server")
	port := freePort(t)
	dir := workDir(t)
	users := ""
	if os.Geteuid() == 0 {
		users = "user.privileged: root\nuser.unprivileged: nobody\n"
	}
	cfg := writeFile(t, dir, "danted.conf", fmt.Sprintf(`logoutput: stderr
internal: 127.0.0.1 port = %d
external: 127.0.0.1
clientmethod: none
socksmethod: none
%s
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
%s
socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 }
`, port, users, strings.Join(rules, "\n")))
	// Without -D, danted stays in the foreground.
	return startDaemon(t, bin, fmt.Sprintf("127.0.0.1:%d", port), "-f", cfg)
}

// microsocks runs Debian's microsocks, a SOCKS5 proxy that wants user and
// password.
func microsocks(t *testing.T, user, password string) *daemon {
	t.Helper()
	bin := binary(t, "microsocks", "microsocks")
	port := freePort(t)
	return startDaemon(t, bin, fmt.Sprintf("127.0.0.1:%d", port),
		"-i", "127.0.0.1", "-p", fmt.Sprint(port), "-u", user, "-P", password)
}

// selfSigned writes a certificate for 127.0.0.1 and its key to dir, and
// returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "proxytest proxy"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, "proxy.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, dir, "proxy.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// proxyTLS trusts only the proxy's certificate.
func (s *squidProxy) proxyTLS() *tls.Config { return &tls.Config{RootCAs: s.ca} }
