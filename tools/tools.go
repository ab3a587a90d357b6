//go:build tools

// Package tools pins the versions of the linters that .ci/lint runs, so
// that CI builds them from the Go module proxy at exactly these versions.
package tools

import (
	_ "golang.org/x/vuln/cmd/govulncheck"
	_ "golang.org/x/vulndb/cmd/indexdb"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
