package wsreconnect

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// redact hides the credentials and query of a URL that err mentions (net/http
// puts the request URL into its errors; a token in the query would
// otherwise reach logs). The result unwraps to err.
// In the browser, coder/websocket's dial error has no *url.Error: it quotes
// the URL itself, as in `failed to WebSocket dial "wss://…": …`.
func redact(err error) error {
	var uerr *url.Error
	switch {
	case err == nil:
		return err
	case errors.As(err, &uerr) && uerr.URL != "":
		return redactURL(err, uerr.URL)
	}
	msg := err.Error()
	const marker = `WebSocket dial "`
	i := strings.Index(msg, marker)
	if i < 0 {
		return err
	}
	quoted, perr := strconv.QuotedPrefix(msg[i+len(marker)-1:])
	if perr != nil {
		return err
	}
	raw, perr := strconv.Unquote(quoted)
	if perr != nil || raw == "" {
		return err
	}
	return redactURL(err, raw)
}

// redactURL replaces rawURL, wherever err's message mentions it, by the URL
// without user info, query and fragment. A URL that does not parse (one
// without a scheme, say) is shown as typed but for those parts: the
// mistake must stay visible, the credentials must not.
func redactURL(err error, rawURL string) error {
	safe := redactUnparsed(rawURL)
	if u, perr := url.Parse(rawURL); perr == nil {
		u.User = nil
		if u.RawQuery != "" {
			u.RawQuery = "REDACTED"
		}
		u.Fragment = ""
		safe = u.String()
	}
	msg := err.Error()
	if !strings.Contains(msg, rawURL) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(msg, rawURL, safe), err: err}
}

// redactUnparsed drops from raw, a URL that does not parse, what looks like
// user info (up to an '@' before the path), the query and the fragment.
func redactUnparsed(raw string) string {
	s := raw
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	query := ""
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s, query = s[:i], "?REDACTED"
	}
	start := 0
	if i := strings.Index(s, "//"); i >= 0 {
		start = i + 2
	}
	end := len(s)
	if i := strings.IndexByte(s[start:], '/'); i >= 0 {
		end = start + i
	}
	if at := strings.LastIndexByte(s[start:end], '@'); at >= 0 {
		s = s[:start] + s[start+at+1:]
	}
	return s + query
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
