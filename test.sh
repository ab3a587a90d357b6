#!/usr/bin/env bash
# Runs every test of every module in this repository, under the race
# detector and with goroutine-leak checks (goleak in the test modules,
# internal/leakcheck in the root module). The test modules' dependencies
# (toxiproxy, chromedp, goleak, ...) come through the Go module proxy on the
# first run. Needs what .ci/run installs: Debian's python3-websockets,
# iptables and chromium. Prints the skipped tests at the end: none should
# skip in CI.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/testsummary" ./internal/testsummary
status=0
for mod in . $(find internal -name go.mod -not -path '*/testdata/*' -exec dirname {} \; | sort); do
	echo "== module $mod"
	if ! (cd "$mod" && go vet ./... && go test -race -count=1 -timeout 15m -json ./... | "$tmp/testsummary" -skipped "$tmp/skipped"); then
		status=1
	fi
done
if [ -s "$tmp/skipped" ]; then
	echo "== skipped tests"
	cat "$tmp/skipped"
else
	echo "== no test skipped"
fi
exit $status
