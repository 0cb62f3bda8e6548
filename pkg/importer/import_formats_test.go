package importer_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/importer"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

const ndjson = `{"event_id":"e1","ts":"2026-03-01T10:00:00Z","type":"sent","message_id":"wamid.1","contact_id":"c1","campaign":"spring","sender":"campaign","value":0.05}
{"ts":"2026-03-01T10:00:05Z","type":"delivered","message_id":"wamid.1"}

{"ts":"2026-03-01T10:01:00Z","type":"opened","message_id":"wamid.1"}
{"event_id":"e4","ts":"2026-03-01T10:02:00Z","type":"csat","conversation_id":"k1","value":9}
not json
{"event_id":"e6","ts":"1772359200","type":"read","message_id":"wamid.1","city":"Rome"}
{"event_id":"e7","ts":1772359260,"type":"read","message_id":"wamid.1"}
`

const csvBody = "event_id,ts,type,message_id,error_code,value\n" +
	"f1,2026-03-01T11:00:00Z,failed,wamid.2,131026,\n" +
	"f2,2026-03-01 11:00:01,failed,wamid.3,abc,\n" +
	"f3,2026-03-01T11:00:02Z,sent,,,\n" +
	"f4,2026-03-01T11:00:03Z,delivered,wamid.2\n" +
	",2026-03-01T11:00:05Z,read,wamid.2,,\n"

func TestImportValidatesEveryRowAndIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	files := []string{write(t, dir, "a.ndjson", ndjson), write(t, dir, "b.csv", csvBody)}
	w, err := store.OpenWriter(filepath.Join(dir, "store"))
	require.NoError(t, err)
	defer w.Close()
	ctx := context.Background()

	rep, err := importer.Import(ctx, w, files)
	require.NoError(t, err)
	assert.Equal(t, 5, rep.Written) // e1, wamid.1:delivered, e7, f1, wamid.2:read
	reasons := map[string]string{}
	for _, r := range rep.Rejected {
		reasons[filepath.Base(r.File)+":"+strconv.Itoa(r.Line)] = r.Reason
	}
	assert.Contains(t, reasons["a.ndjson:4"], `type "opened" is not an event type`)
	assert.Contains(t, reasons["a.ndjson:5"], "csat value must be a score from 1 to 5, got 9")
	assert.Contains(t, reasons["a.ndjson:6"], "not a JSON object")
	assert.Contains(t, reasons["a.ndjson:7"], `unknown column "city"`)
	assert.Contains(t, reasons["b.csv:3"], `error_code "abc" is not a whole number`)
	assert.Contains(t, reasons["b.csv:4"], "message_id is required for sent events")
	assert.Contains(t, reasons["b.csv:5"], "4 fields, but the header has 6")
	assert.Equal(t, 7, rep.RejectedN)
	assert.Equal(t, 12, rep.Read) // the blank line is not a row

	// The same files again: nothing changes.
	segs, _ := store.ListSegments(w.Dir())
	rep2, err := importer.Import(ctx, w, files)
	require.NoError(t, err)
	assert.Equal(t, 0, rep2.Written)
	assert.Equal(t, rep.Written, rep2.Duplicates)
	segs2, _ := store.ListSegments(w.Dir())
	assert.Equal(t, len(segs), len(segs2), "no new segment")
}

func TestImportParquetAndUnknownFormat(t *testing.T) {
	dir := t.TempDir()
	pq := filepath.Join(dir, "events.parquet")
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	_, err = db.Exec(`COPY (SELECT * FROM (VALUES
		('p1', TIMESTAMPTZ '2026-03-01 10:00:00+00', 'sent', 'wamid.9', 'campaign', 0.07),
		('p2', TIMESTAMPTZ '2026-03-01 10:00:03+00', 'delivered', 'wamid.9', NULL, NULL),
		('p3', TIMESTAMPTZ '2026-03-01 10:00:04+00', 'nps', NULL, NULL, 11.0)
	) t(event_id, ts, type, message_id, sender, value)) TO '` + pq + `' (FORMAT parquet)`)
	require.NoError(t, err)
	db.Close()

	w, err := store.OpenWriter(filepath.Join(dir, "store"))
	require.NoError(t, err)
	defer w.Close()
	rep, err := importer.Import(context.Background(), w, []string{pq})
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Written)
	require.Len(t, rep.Rejected, 1)
	assert.Equal(t, 3, rep.Rejected[0].Line)
	assert.Contains(t, rep.Rejected[0].Reason, "nps value must be a score from 0 to 10")

	_, err = importer.Import(context.Background(), w, []string{write(t, dir, "x.xlsx", "")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown file type ".xlsx"`)
	_, err = importer.Import(context.Background(), w, []string{filepath.Join(dir, "missing.csv")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.csv")
}
