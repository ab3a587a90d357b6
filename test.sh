#!/usr/bin/env bash
# Runs every test of every module in this repository (the library at the
# root, otelwsreconnect, the test modules under internal/), under the race
# detector and with goroutine-leak checks (goleak in the other modules,
# internal/leakcheck in the root module). The test modules' dependencies
# (toxiproxy, chromedp, goleak, ...) come through the Go module proxy on the
# first run. Needs what .ci/run installs: Debian's python3-websockets,
# iptables, chromium, tinyproxy, squid, dante-server, microsocks and
# redis-server. The modules are the root, and each go.mod under internal/
# (test modules), otelwsreconnect/ and resume/ (resume/redisstore).
#
# Each module's results are printed as go test prints them; the run ends
# with the failed tests, one line "N passed, N failed, N skipped" over every
# module (subtests count; see internal/testsummary for what counts), and the
# skipped tests, with their reasons: none should skip in CI. It exits
# non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/testsummary" ./internal/testsummary
all="$tmp/all.json" # every module's go test -json, for the verdict
: >"$all"
# fail records a failure that go test's JSON does not show, for the verdict
# to count (internal/testsummary reads the Output of a package's fail event
# as what failed).
fail() { printf '{"Action":"fail","Package":"%s","Output":"%s"}\n' "$1" "$2" >>"$all"; }
for mod in . $(find internal otelwsreconnect resume -name go.mod -not -path '*/testdata/*' -exec dirname {} \; | sort); do
	echo "== module $mod"
	if ! (cd "$mod" && go vet ./...); then
		fail "module $mod" "go vet ./... failed; its tests did not run"
		continue
	fi
	set +e
	(cd "$mod" && go test -race -count=1 -timeout 15m -json ./...) | tee -a "$all" | "$tmp/testsummary"
	codes=("${PIPESTATUS[@]}")
	set -e
	# testsummary exits 1 when it saw a failure; go test failing without
	# one (the go command itself, a module it could not fetch) is counted
	# here.
	if [ "${codes[0]}" != 0 ] && [ "${codes[2]}" = 0 ]; then
		fail "module $mod" "go test exited ${codes[0]} with no failure in its JSON"
	fi
done
echo "== verdict"
"$tmp/testsummary" -verdict <"$all"
