package events

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FromRecord (CSV rows in the importer) and FromFields (the events API, NDJSON, CSV files
// with a phone column) give the same event or the same error for the same row.
func TestFromRecordMatchesFromFields(t *testing.T) {
	seed := rand.Int63()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	samples := map[string][]string{
		"event_id":     {"e1", " e2 ", "e3", ""},
		"ts":           {"2026-03-01T10:00:00Z", "2026-03-01 10:00:00+02", "2026-03-01", "yesterday"},
		"type":         {"sent", "delivered", "received", "received", "bogus"},
		"message_id":   {"m1", "", "  "},
		"contact_id":   {"c1", ""},
		"error_code":   {"131026", "1.5", "x", "", "", ""},
		"value":        {"9.99", "NaN", "1e400", "-3", "", "", ""},
		"currency":     {"EUR", ""},
		"quality":      {"GREEN", "red", ""},
		"pricing_type": {"marketing", ""},
		"campaign":     {"spring", ""},
	}
	names := make([]string, 0, len(samples))
	for _, c := range Columns {
		if samples[c.Name] != nil {
			names = append(names, c.Name)
		}
	}
	valid := 0
	require.Equal(t, []string{"event_id", "ts", "type"}, names[:3], "the required columns come first in Columns")
	for i := 0; i < 3000; i++ {
		// The required columns and a random subset of the others, in a random order.
		cols := []string{"event_id", "ts", "type"}
		for _, c := range names[3:] {
			if rng.Intn(2) == 0 {
				cols = append(cols, c)
			}
		}
		rng.Shuffle(len(cols), func(a, b int) { cols[a], cols[b] = cols[b], cols[a] })
		rec := make([]string, len(cols))
		fields := map[string]string{}
		for j, c := range cols {
			rec[j] = samples[c][rng.Intn(len(samples[c]))]
			fields[c] = rec[j]
		}
		fromMap, errMap := FromFields(fields)
		fromRec, errRec := FromRecord(cols, rec)
		require.Equal(t, fmt.Sprint(errMap), fmt.Sprint(errRec), "row %v", fields)
		if errMap == nil {
			require.Equal(t, fromMap, fromRec, "row %v", fields)
			valid++
		}
	}
	assert.Greater(t, valid, 150, "some rows are valid")
	assert.Less(t, valid, 2500, "many rows are not")
}

// A row with several bad values names the first in the event model's column order, every
// time (a map's order used to pick one at random).
func TestFromFieldsNamesTheFirstBadColumn(t *testing.T) {
	fields := map[string]string{"event_id": "e1", "type": "sent", "value": "x", "error_code": "y", "ts": "z"}
	for i := 0; i < 50; i++ {
		_, err := FromFields(fields)
		require.Error(t, err)
		assert.True(t, strings.HasPrefix(err.Error(), "ts: "), err.Error())
	}
	fields["ts"] = "2026-03-01T10:00:00Z"
	fields["colour"], fields["bogus"] = "red", "1"
	for i := 0; i < 50; i++ {
		_, err := FromFields(fields)
		assert.EqualError(t, err, `error_code "y" is not a whole number`)
	}
	fields["error_code"], fields["value"] = "1", "2"
	for i := 0; i < 50; i++ {
		_, err := FromFields(fields)
		assert.ErrorContains(t, err, `unknown column "bogus"`)
	}
}

// A column named twice in a CSV header is refused: which of its two values counts would
// otherwise be a guess.
func TestReadCSVRefusesARepeatedColumn(t *testing.T) {
	in := "event_id,ts,type,contact_id, contact_id\ne1,2026-03-01T10:00:00Z,received,c1,c2\n"
	err := ReadCSVRecords(bytes.NewReader([]byte(in)), "x.csv", nil, func(int, []string, []string) error {
		t.Fatal("no row may be read")
		return nil
	}, func(Rejected) {})
	assert.EqualError(t, err, `x.csv:1: column "contact_id" appears twice in the header`)

	var got [][]string
	in = "event_id,ts,type\ne1,2026-03-01T10:00:00Z,sent\ne2,2026-03-01T10:00:01Z,sent\n"
	require.NoError(t, ReadCSVRecords(bytes.NewReader([]byte(in)), "x.csv", nil, func(line int, cols, rec []string) error {
		got = append(got, rec)
		return nil
	}, func(Rejected) {}))
	assert.Equal(t, [][]string{{"e1", "2026-03-01T10:00:00Z", "sent"}, {"e2", "2026-03-01T10:00:01Z", "sent"}}, got, "each record is the caller's to keep")
}

// Builder takes known columns once each with good values, and refuses the rest for the
// map path to word; what it builds equals FromFields.
func TestBuilder(t *testing.T) {
	require.LessOrEqual(t, len(Columns), 64, "Builder.seen has a bit per column")
	var b Builder
	row := [][2]string{{"type", "received"}, {"ts", "2026-03-01T10:00:00Z"}, {"event_id", "e1"}, {"contact_id", " c1 "}, {"value", "3"}}
	fields := map[string]string{}
	for _, kv := range row {
		require.True(t, b.Set(kv[0], kv[1], false), kv[0])
		fields[kv[0]] = kv[1]
	}
	require.True(t, b.Set("campaign", "", true), "a null names the column")
	got, err := b.Event()
	require.NoError(t, err)
	want, err := FromFields(fields)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	assert.False(t, b.Set("campaign", "x", false), "named twice (after a null)")
	assert.False(t, b.Set("event_id", "e2", false), "named twice")
	b.Reset()
	assert.False(t, b.Set("phone", "+390000", false), "not a column")
	assert.False(t, b.Set("value", "ten", false), "a bad value")
	assert.True(t, b.Set("ts", "2026-03-01", false), "after Reset")

	_, err = FromRecord([]string{"event_id", "ts"}, []string{"e1"})
	assert.EqualError(t, err, "1 fields, but the header has 2")
}
