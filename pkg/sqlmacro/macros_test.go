package sqlmacro_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/sqlmacro"
)

var ctx = sqlmacro.Context{
	From:     time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
	To:       time.Date(2026, 3, 2, 12, 30, 0, 0, time.UTC),
	Interval: 5 * time.Minute,
	Location: time.UTC,
	Bucket: func(width, column string) (string, error) {
		if width != "1h" {
			return "", fmt.Errorf("bucket %q is not allowed", width)
		}
		return "bucket_1h(" + column + ")", nil
	},
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"timeFilter", "SELECT 1 FROM events WHERE $__timeFilter(ts)",
			"SELECT 1 FROM events WHERE (ts >= TIMESTAMPTZ '2026-03-01 00:00:00.000000+00' AND ts < TIMESTAMPTZ '2026-03-02 12:30:00.000000+00')"},
		{"timeFrom and timeTo", "SELECT $__timeFrom, $__timeTo",
			"SELECT TIMESTAMPTZ '2026-03-01 00:00:00.000000+00', TIMESTAMPTZ '2026-03-02 12:30:00.000000+00'"},
		{"timeGroup", "SELECT $__timeGroup(ts, '1h') AS time", "SELECT bucket_1h(ts) AS time"},
		{"unixEpochFilter", "WHERE $__unixEpochFilter(epoch_s)", "WHERE (epoch_s >= 1772323200 AND epoch_s < 1772454600)"},
		{"conditionalAll with a multi-value", "WHERE $__conditionalAll(country IN ('IT','DE'), 'IT','DE')", "WHERE (country IN ('IT','DE'))"},
		{"conditionalAll with one value", "WHERE $__conditionalAll(country = 'IT', 'IT')", "WHERE (country = 'IT')"},
		{"conditionalAll All", "WHERE $__conditionalAll(country IN ($country), $__all)", "WHERE TRUE"},
		{"conditionalAll unexpanded", "WHERE $__conditionalAll(country IN ($country), $country)", "WHERE TRUE"},
		{"interval", "SELECT $__interval", "SELECT INTERVAL '300 seconds'"},
		{"interval_ms before interval", "SELECT $__interval_ms, $__interval", "SELECT 300000, INTERVAL '300 seconds'"},
		{"nested parentheses", "WHERE $__timeFilter(coalesce(ts, now()))",
			"WHERE (coalesce(ts, now()) >= TIMESTAMPTZ '2026-03-01 00:00:00.000000+00' AND coalesce(ts, now()) < TIMESTAMPTZ '2026-03-02 12:30:00.000000+00')"},
		{"no macros", "SELECT count(*) FROM events", "SELECT count(*) FROM events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sqlmacro.Expand(tc.in, ctx)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestExpandErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"timeFilter without column", "WHERE $__timeFilter()", "$__timeFilter takes 1 argument(s), got 0"},
		{"timeFilter with two", "WHERE $__timeFilter(a, b)", "$__timeFilter takes 1 argument(s), got 2"},
		{"timeFrom with args", "SELECT $__timeFrom(ts)", "$__timeFrom takes no arguments"},
		{"timeGroup one arg", "SELECT $__timeGroup(ts)", "$__timeGroup takes 2 arguments"},
		{"timeGroup bad width", "SELECT $__timeGroup(ts, '7m')", `bucket "7m" is not allowed`},
		{"unclosed", "WHERE $__timeFilter(ts", "missing close bracket"},
		{"unknown macro", "SELECT $__timeShift(ts)", "unknown macro $__timeShift"},
		{"table", "SELECT * FROM $__table", "$__table is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sqlmacro.Expand(tc.in, ctx)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
