package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A partial run replaces the rows of the steps it ran, wherever the old
// table had them, keeps the others, and orders all of them by step.
func TestMergeVerdictsReplacesTheRowsOfTheStepsThatRan(t *testing.T) {
	page := "intro\n<!-- benchall:verdict -->\n" + verdictTable([]verdict{
		{"storm peak, sim, TCP drop (1006), N = 2000", "b", "old storm", true},
		{"1KiB write, rawws peer: throughput vs raw coder/websocket", "≥ 0.98×", "old 1KiB", true},
		{"4MiB read, heartbeat on (fragments, pings): throughput vs raw", "≥ 1.00×", "old 4MiB", true},
		{"extra allocations per 1 KiB Write, rawws peer", "b", "old allocs", true},
		{"dead-peer detection ÷ (interval + timeout), proxy", "b", "old detect", true},
	}) + "<!-- /benchall:verdict -->\nrest\n"
	got := mergeVerdicts(page, []verdict{
		{"1KiB write, rawws peer: throughput vs raw coder/websocket", "≥ 0.98×", "new 1KiB", true},
		{"extra allocations per 1 KiB Write, rawws peer", "b", "new allocs", false},
	}, map[string]bool{"message": true})
	for _, old := range []string{"old 1KiB", "old 4MiB", "old allocs"} {
		if strings.Contains(got, old) {
			t.Errorf("the merged table keeps %q, a row of a step that ran:\n%s", old, got)
		}
	}
	var order []string
	for _, want := range []string{"new 1KiB", "new allocs", "old storm", "old detect"} {
		i := strings.Index(got, want)
		if i < 0 {
			t.Fatalf("the merged table lacks %q:\n%s", want, got)
		}
		order = append(order, want)
		if len(order) > 1 && i < strings.Index(got, order[len(order)-2]) {
			t.Errorf("%q comes before %q; want step order:\n%s", want, order[len(order)-2], got)
		}
	}
}

// Partial runs accumulate: each keeps the provenance of the earlier ones,
// except those whose steps all ran again.
func TestMergePartialKeepsTheEarlierRunsOfOtherSteps(t *testing.T) {
	page := "x\n<!-- benchall:env-partial -->\nNone: every step ran in the run above.\n<!-- /benchall:env-partial -->\n"
	page = "x\n<!-- benchall:env-partial -->\n" + mergePartial(page, []string{"message"}, "| run | 1 |\n") + "<!-- /benchall:env-partial -->\n"
	if strings.Contains(page, "None:") || !strings.Contains(page, "| run | 1 |") {
		t.Fatalf("first partial run:\n%s", page)
	}
	page = "x\n<!-- benchall:env-partial -->\n" + mergePartial(page, []string{"storm"}, "| run | 2 |\n") + "<!-- /benchall:env-partial -->\n"
	if i, j := strings.Index(page, "| run | 2 |"), strings.Index(page, "| run | 1 |"); i < 0 || j < 0 || i > j {
		t.Fatalf("second partial run: want run 2, then run 1:\n%s", page)
	}
	got := mergePartial(page, []string{"message", "storm"}, "| run | 3 |\n")
	if strings.Contains(got, "| run | 1 |") || strings.Contains(got, "| run | 2 |") || !strings.Contains(got, "| run | 3 |") {
		t.Fatalf("a run of both steps supersedes both:\n%s", got)
	}
}
