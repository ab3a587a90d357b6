#!/usr/bin/env bash
# Runs every test of every module in this repository, under the race
# detector and with goroutine-leak checks (goleak, in each package's tests).
# Needs what .ci/run installs: Debian's python3-websockets and iptables.
set -euo pipefail
cd "$(dirname "$0")"
for mod in . $(find internal -name go.mod -not -path '*/testdata/*' -exec dirname {} \; | sort); do
	echo "== module $mod"
	(cd "$mod" && go vet ./... && go test -race -count=1 -timeout 15m ./...)
done
