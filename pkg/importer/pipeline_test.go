package importer

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/pseudo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// randomJSONLine builds an NDJSON line that is usually a valid flat event and often not:
// escapes, nested values, null, repeated keys, numbers in every JSON form (and some that
// are not JSON), phone columns, unknown keys, whitespace, broken syntax.
func randomJSONLine(rng *rand.Rand) string {
	pick := func(xs ...string) string {
		if rng.Intn(10) < 6 {
			return xs[0] // usually the ordinary value
		}
		return xs[rng.Intn(len(xs))]
	}
	str := func() string {
		return pick(`"a"`, `"wamid.X1"`, `""`, `" sp "`, `"é日本"`, `"quote\"d"`, `"tab\t"`, `"\u00e9"`, `"line\nbreak"`,
			`"`+"\x01"+`"`, `"`+"\xff"+`"`, `"campaign"`, `"SENT"`, `"IT"`)
	}
	value := func(key string) string {
		switch key {
		case "ts":
			return pick(`"2026-03-01T10:00:00Z"`, `"2026-03-01 10:00:00"`, `1772359200`, `1772359200123`, `"1772359200.5"`, `"yesterday"`, `null`, `1.5e9`)
		case "type":
			return pick(`"sent"`, `"delivered"`, `"csat"`, `"converted"`, `"Read"`, `"opened"`, `null`, `7`)
		case "value", "error_code":
			return pick(`1`, `-0`, `0.5`, `1e2`, `1E+2`, `-1.25e-3`, `01`, `1.`, `.5`, `-`, `1e`, `"3"`, `"x"`, `true`, `null`, `{"a":1}`, `[1]`, `1e400`, `131026`)
		case "phone", "wa_id":
			return pick(`"+39 333 123 4567"`, `"393331234567"`, `393331234567`, `"12"`, `""`, `null`, `{"n":1}`, `" "`)
		}
		return pick(str(), str(), str(), `null`, `true`, `false`, `12`, `[]`, `{}`, `nul`, `tru`)
	}
	keys := []string{"message_id", "event_id", "ts", "type", "contact_id", "campaign", "country", "value", "error_code",
		"sender", "conversation_id", "phone", "wa_id", "city", "Type", `ev\u0065nt_id`}
	var parts []string
	for k := rng.Intn(8); k >= 0; k-- {
		key := pick(keys...)
		if k == 0 || rng.Intn(3) == 0 {
			key = []string{"event_id", "ts", "type", "message_id"}[rng.Intn(4)]
		}
		parts = append(parts, fmt.Sprintf(`%q:%s`, key, value(key)))
	}
	if rng.Intn(2) == 0 {
		parts = append(parts, `"ts":"2026-03-01T10:00:00Z"`, `"type":"sent"`, `"message_id":"wamid.1"`)
	}
	sep := []string{",", ", ", " ,\t"}[rng.Intn(3)]
	body := "{" + strings.Join(parts, sep) + "}"
	switch rng.Intn(25) {
	case 0:
		body = body[:len(body)-1]
	case 1:
		body += "x"
	case 2:
		body = "[" + body + "]"
	case 3:
		body = " \t" + body + " "
	case 4:
		body = "{}"
	case 5:
		body = strings.Replace(body, ":", " : ", -1)
	}
	return body
}

// TestNDJSONFastPathMatchesGeneral: for tens of thousands of random lines, the one-pass
// scanner plus events.FromFields gives the same event, or the same rejection, as the
// general decoder (pseudonymiseJSON + events.DecodeJSONObject), phones included.
func TestNDJSONFastPathMatchesGeneral(t *testing.T) {
	h, err := pseudo.New([]byte("importer-test-key-0123456789"))
	require.NoError(t, err)
	for _, ph := range []*phones{{h: h}, {got: true, err: fmt.Errorf("a phone column (phone or wa_id) is stored only as a keyed hash: no key")}} {
		d := &rowDecoder{file: "f", ph: ph, m: map[string]string{}}
		rng := rand.New(rand.NewSource(42))
		fast, built, errs := 0, 0, 0
		for i := 0; i < 40000; i++ {
			line := []byte(randomJSONLine(rng))
			if scanFlatObject(line, map[string]string{}) {
				fast++
			}
			var eb events.Builder
			if valid, taken := ScanFlatJSONInto(line, &eb); valid && taken {
				if _, err := eb.Event(); err == nil {
					built++ // straight into the event, no map
				}
			}
			got, gotErr := d.jsonRow(line)
			want, wantErr := d.jsonRowGeneral(line)
			if wantErr != nil {
				errs++
				// Both name the first bad column in the event model's order.
				require.EqualError(t, gotErr, wantErr.Error(), "line %s", line)
				continue
			}
			require.NoError(t, gotErr, "line %s", line)
			require.Equal(t, want, got, "line %s", line)
		}
		t.Logf("%d of 40000 lines on the fast path, %d of them valid events built without a map, %d rejected", fast, built, errs)
		assert.Greater(t, fast, 10000)
		assert.Greater(t, built, 200, "the builder's path is taken")
	}
}

// TestImportPipelineKeepsOrder: a file of many chunks with rejected rows scattered through
// it, imported in several batches: events are stored in file order, each once, rejected
// rows are reported in line order, and the counts add up. Both text formats.
func TestImportPipelineKeepsOrder(t *testing.T) {
	old := batchSize
	batchSize = 7000 // several segments, several SkipExisting checks
	defer func() { batchSize = old }()

	const n = 30_000
	dir := t.TempDir()
	var nd, cs strings.Builder
	cs.WriteString("event_id,ts,type,message_id\n")
	wantIDs := []string{}
	var wantRejected []int
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("e%05d", (i*7)%n)
		if i%1000 == 999 {
			id = fmt.Sprintf("e%05d", (i-500)*7%n) // a repeat of an earlier row
		}
		typ := "sent"
		if i%997 == 3 {
			typ = "opened" // rejected
			wantRejected = append(wantRejected, i+1)
		} else if !seen[id] {
			seen[id] = true
			wantIDs = append(wantIDs, id)
		}
		fmt.Fprintf(&nd, `{"event_id":%q,"ts":"2026-03-01T10:00:00Z","type":%q,"message_id":"wamid.%d"}`+"\n", id, typ, i)
		fmt.Fprintf(&cs, "%s,2026-03-01T10:00:00Z,%s,wamid.%d\n", id, typ, i)
	}
	for _, f := range []struct{ name, body string }{{"a.ndjson", nd.String()}, {"a.csv", cs.String()}} {
		p := filepath.Join(dir, f.name)
		require.NoError(t, os.WriteFile(p, []byte(f.body), 0o644))
		st := filepath.Join(dir, "store-"+f.name)
		w, err := store.OpenWriter(st)
		require.NoError(t, err)
		rep, err := Import(context.Background(), w, []string{p})
		w.Close()
		require.NoError(t, err)
		assert.Equal(t, n, rep.Read)
		assert.Equal(t, len(wantIDs), rep.Written)
		assert.Equal(t, n-len(wantRejected)-len(wantIDs), rep.Duplicates)
		require.Equal(t, len(wantRejected), rep.RejectedN)
		for k, r := range rep.Rejected {
			line := wantRejected[k]
			if f.name == "a.csv" {
				line++ // the header
			}
			assert.Equal(t, line, r.Line)
		}
		assert.Equal(t, wantIDs, storedIDs(t, st), f.name)
		segs, _ := store.ListSegments(st)
		assert.GreaterOrEqual(t, len(segs), 4, "several batches")
	}
}

func storedIDs(t *testing.T, dir string) []string {
	segs, err := store.ListSegments(dir)
	require.NoError(t, err)
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT event_id FROM read_parquet(" + store.ParquetList(segs) + ", filename = true, file_row_number = true) ORDER BY filename, file_row_number")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}

// TestImportCancelled: a cancelled import stops with the context's error and leaves no
// goroutine writing.
func TestImportCancelled(t *testing.T) {
	dir := t.TempDir()
	var nd strings.Builder
	for i := 0; i < 50_000; i++ {
		fmt.Fprintf(&nd, `{"event_id":"x%d","ts":"2026-03-01T10:00:00Z","type":"blocked","contact_id":"c"}`+"\n", i)
	}
	p := filepath.Join(dir, "a.ndjson")
	require.NoError(t, os.WriteFile(p, []byte(nd.String()), 0o644))
	w, err := store.OpenWriter(filepath.Join(dir, "store"))
	require.NoError(t, err)
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Import(ctx, w, []string{p})
	require.ErrorIs(t, err, context.Canceled)
}
