// Command blueticks is the companion CLI of the Blue Ticks data source:
//
//	blueticks demo   --store DIR [--events N] [--days D] [--seed S]
//	blueticks import --store DIR FILE...
//	blueticks query  --store DIR --from T --to T 'QUERY-JSON'
//	blueticks serve  --store DIR --listen ADDR
//
// Every command takes --log-level debug|info|warn|error (default warn; serve: info).
// It exits non-zero with a message on any error.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `blueticks: WhatsApp Business KPIs from a DuckDB event store

Usage:
  blueticks demo   --store DIR [--events N] [--days D] [--seed S]   write a realistic demo store
  blueticks import --store DIR FILE...                              import .ndjson/.jsonl, .csv, .parquet files
  blueticks query  [--store DIR] [--from T] [--to T] [--format table|json|csv] 'QUERY-JSON'
                                                                    print KPIs (no --store: the embedded demo)
  blueticks serve  --store DIR --listen ADDR [--retention-days N]   receive WhatsApp webhooks and the events API
                                                                    (secrets from BLUETICKS_APP_SECRET, BLUETICKS_VERIFY_TOKEN,
                                                                    BLUETICKS_API_TOKEN, BLUETICKS_HASH_KEY)
Every command takes --log-level debug|info|warn|error: the least severe log lines written
to stderr (default warn; serve: info).
Times (T): RFC 3339 (2026-03-01T10:00:00Z), a date (2026-03-01), now, or now-<n><m|h|d|w> (now-7d).
Run 'blueticks COMMAND --help' for a command's flags.
`

// commands maps a verb to its implementation; each returns a user-facing error.
var commands = map[string]func(ctx context.Context, args []string) error{
	"demo":   runDemo,
	"import": runImport,
	"query":  runQuery,
	"serve":  runServe,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "blueticks: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err := cmd(ctx, args[1:]); err != nil {
		if err == errHelp {
			return 0
		}
		fmt.Fprintf(stderr, "blueticks %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
