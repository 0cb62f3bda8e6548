package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// printReport prints r for the queries and times given and returns the Markdown.
func printReport(t *testing.T, r *report, good []benchQuery, times map[string]map[string][]float64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.md")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	r.print(f, good, []string{"engine", "duckdb", "postgres"}, times, 2, "")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A PostgreSQL median at --pg-timeout is a lower bound: its time, its ratio and the sum
// of all queries are marked "> ", and the queries stopped in the check round are listed.
func TestReportMarksTimedOutMediansAsLowerBounds(t *testing.T) {
	good := []benchQuery{{panel: "Sent", name: "sent"}, {panel: "Delivery rate", name: "delivery_rate"}}
	times := map[string]map[string][]float64{
		"sent":          {"engine": {10, 10}, "duckdb": {2000, 2000}, "postgres": {9000, 9000}},
		"delivery_rate": {"engine": {50, 50}, "duckdb": {18000, 18000}, "postgres": {120000, 120000}},
	}
	r := &report{started: time.Now(), finished: time.Now(), pgTimeout: 2 * time.Minute,
		unfinished: []string{"`delivery_rate` on postgres: not finished within 2m0s, so its answer was not checked"}}
	out := printReport(t, r, good, times)
	for _, want := range []string{
		"| Sent | `sent` | 10.0 | 2000 | 200× | 9000 | 900× |",
		"| Delivery rate | `delivery_rate` | 50.0 | 18000 | 360× | > 120000 | > 2400× |",
		"| **all 2, one after another** | | 60.0 | 20000 | 333× | > 129000 | > 2150× |",
		"statement_timeout 2m0s",
		"**Stopped by the PostgreSQL timeout (2m0s;",
		"- `delivery_rate` on postgres: not finished within 2m0s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	// Without a timeout nothing is marked, even at the same times.
	out = printReport(t, &report{started: time.Now(), finished: time.Now()}, good, times)
	if strings.Contains(out, "> ") || strings.Contains(out, "Stopped by") || strings.Contains(out, "statement_timeout") {
		t.Errorf("report without --pg-timeout marks lower bounds:\n%s", out)
	}
	if !strings.Contains(out, "| 120000 | 2400× |") {
		t.Errorf("report lacks the plain PostgreSQL time:\n%s", out)
	}
}
