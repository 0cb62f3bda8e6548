// Package sqlmacro expands the raw SQL macros of Blue Ticks (DuckDB syntax) with the SDK's
// sqlutil.Interpolate. Each macro is one pure function with its expansion documented;
// literals come from helpers, never from pasting a viewer's text into a string.
package sqlmacro

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data/sqlutil"
)

// Context is what the macros depend on.
type Context struct {
	From, To time.Time
	Interval time.Duration
	Location *time.Location
	// Bucket parses a bucket width such as '1h' (the query model's rules) and renders the
	// SQL of the bucket start of a column; the kpi package provides it.
	Bucket func(width, column string) (string, error)
}

// Expand replaces every macro in sql. An unknown $__name is an error naming it.
func Expand(sql string, c Context) (string, error) {
	q := &sqlutil.Query{RawSQL: sql, Interval: c.Interval}
	q.TimeRange.From, q.TimeRange.To = c.From, c.To
	out, err := sqlutil.Interpolate(q, Macros(c))
	if err != nil {
		return "", fmt.Errorf("macro: %w", err)
	}
	if m := leftover.FindString(out); m != "" {
		return "", fmt.Errorf("unknown macro %s (allowed: $__timeFilter(col), $__timeFrom, $__timeTo, $__timeGroup(col, '1h'), $__unixEpochFilter(col), $__conditionalAll(condition, $var), $__interval, $__interval_ms)", m)
	}
	return out, nil
}

var leftover = regexp.MustCompile(`\$__[A-Za-z_]+`)

// TimestampLiteral renders t as a DuckDB TIMESTAMPTZ literal (UTC).
func TimestampLiteral(t time.Time) string {
	return "TIMESTAMPTZ '" + t.UTC().Format("2006-01-02 15:04:05.000000") + "+00'"
}

func arity(name string, args []string, n int) error {
	if len(args) != n || (n > 0 && strings.TrimSpace(args[0]) == "") {
		return fmt.Errorf("%w: $__%s takes %d argument(s), got %d", sqlutil.ErrorBadArgumentCount, name, n, countArgs(args))
	}
	return nil
}

func countArgs(args []string) int {
	if len(args) == 1 && strings.TrimSpace(args[0]) == "" {
		return 0
	}
	return len(args)
}

// Macros returns the macro set for one query.
func Macros(c Context) sqlutil.Macros {
	return sqlutil.Macros{
		"timeFilter":      func(_ *sqlutil.Query, a []string) (string, error) { return TimeFilter(c, a) },
		"timeFrom":        func(_ *sqlutil.Query, a []string) (string, error) { return TimeFrom(c, a) },
		"timeTo":          func(_ *sqlutil.Query, a []string) (string, error) { return TimeTo(c, a) },
		"timeGroup":       func(_ *sqlutil.Query, a []string) (string, error) { return TimeGroup(c, a) },
		"unixEpochFilter": func(_ *sqlutil.Query, a []string) (string, error) { return UnixEpochFilter(c, a) },
		"conditionalAll":  func(_ *sqlutil.Query, a []string) (string, error) { return ConditionalAll(a) },
		"interval":        func(_ *sqlutil.Query, a []string) (string, error) { return Interval(c, a) },
		"interval_ms":     func(_ *sqlutil.Query, a []string) (string, error) { return IntervalMS(c, a) },
		"table": func(_ *sqlutil.Query, _ []string) (string, error) {
			return "", fmt.Errorf("$__table is not supported: query the view events")
		},
		"column": func(_ *sqlutil.Query, _ []string) (string, error) {
			return "", fmt.Errorf("$__column is not supported")
		},
	}
}

// TimeFilter: $__timeFilter(ts) → ts >= TIMESTAMPTZ 'from' AND ts < TIMESTAMPTZ 'to'.
func TimeFilter(c Context, args []string) (string, error) {
	if err := arity("timeFilter", args, 1); err != nil {
		return "", err
	}
	return fmt.Sprintf("(%s >= %s AND %s < %s)", args[0], TimestampLiteral(c.From), args[0], TimestampLiteral(c.To)), nil
}

// TimeFrom: $__timeFrom → TIMESTAMPTZ 'from'.
func TimeFrom(c Context, args []string) (string, error) {
	if countArgs(args) != 0 {
		return "", fmt.Errorf("%w: $__timeFrom takes no arguments", sqlutil.ErrorBadArgumentCount)
	}
	return TimestampLiteral(c.From), nil
}

// TimeTo: $__timeTo → TIMESTAMPTZ 'to'.
func TimeTo(c Context, args []string) (string, error) {
	if countArgs(args) != 0 {
		return "", fmt.Errorf("%w: $__timeTo takes no arguments", sqlutil.ErrorBadArgumentCount)
	}
	return TimestampLiteral(c.To), nil
}

// TimeGroup: $__timeGroup(ts, '1h') → the start of ts's bucket: UTC-aligned under a day,
// local midnight in the query's time zone for '1d' and '1w' (weeks on Monday).
func TimeGroup(c Context, args []string) (string, error) {
	if len(args) != 2 {
		return "", fmt.Errorf("%w: $__timeGroup takes 2 arguments (column, '1h'), got %d", sqlutil.ErrorBadArgumentCount, countArgs(args))
	}
	width := strings.Trim(strings.TrimSpace(args[1]), `'"`)
	if c.Bucket == nil {
		return "", fmt.Errorf("$__timeGroup is not available here")
	}
	return c.Bucket(width, args[0])
}

// UnixEpochFilter: $__unixEpochFilter(col) → col >= fromSeconds AND col < toSeconds.
func UnixEpochFilter(c Context, args []string) (string, error) {
	if err := arity("unixEpochFilter", args, 1); err != nil {
		return "", err
	}
	return fmt.Sprintf("(%s >= %d AND %s < %d)", args[0], c.From.Unix(), args[0], c.To.Unix()), nil
}

// ConditionalAll: $__conditionalAll(condition, $var) → the condition, or TRUE when the
// variable is "All" (empty, $__all, or left unexpanded).
func ConditionalAll(args []string) (string, error) {
	if len(args) < 2 {
		return "", fmt.Errorf("%w: $__conditionalAll takes 2 arguments (condition, $var), got %d", sqlutil.ErrorBadArgumentCount, countArgs(args))
	}
	// The condition is the first argument; a multi-value variable expands to several.
	cond := args[0]
	v := strings.Trim(strings.TrimSpace(strings.Join(args[1:], ",")), `'"()`)
	if v == "" || v == "$__all" || v == "__all" || strings.HasPrefix(v, "$") {
		return "TRUE", nil
	}
	return "(" + cond + ")", nil
}

// Interval: $__interval → INTERVAL 'N seconds' (the panel's interval).
func Interval(c Context, args []string) (string, error) {
	if countArgs(args) != 0 {
		return "", fmt.Errorf("%w: $__interval takes no arguments", sqlutil.ErrorBadArgumentCount)
	}
	return fmt.Sprintf("INTERVAL '%d seconds'", int64(c.Interval/time.Second)), nil
}

// IntervalMS: $__interval_ms → the interval in milliseconds.
func IntervalMS(c Context, args []string) (string, error) {
	if countArgs(args) != 0 {
		return "", fmt.Errorf("%w: $__interval_ms takes no arguments", sqlutil.ErrorBadArgumentCount)
	}
	return strconv.FormatInt(c.Interval.Milliseconds(), 10), nil
}
