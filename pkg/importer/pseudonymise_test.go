package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/pseudo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

const phoneTestKey = "importer-test-key-0123456789"

func contactIDs(t *testing.T, dir string) map[string]string {
	segs, err := store.ListSegments(dir)
	require.NoError(t, err)
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT event_id, coalesce(contact_id, '') FROM read_parquet(" + store.ParquetList(segs) + ")")
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, c string
		require.NoError(t, rows.Scan(&id, &c))
		out[id] = c
	}
	return out
}

func TestImportPseudonymisesPhones(t *testing.T) {
	t.Setenv(pseudo.KeyEnv, phoneTestKey)
	h, err := pseudo.New([]byte(phoneTestKey))
	require.NoError(t, err)
	want, err := h.ContactID("+39 333 123 4567")
	require.NoError(t, err)

	src := t.TempDir()
	ndjson := filepath.Join(src, "crm.ndjson")
	require.NoError(t, os.WriteFile(ndjson, []byte(strings.Join([]string{
		`{"event_id":"n1","ts":"2026-03-01T10:00:00Z","type":"converted","phone":"+39 333 123 4567","value":10}`,
		`{"event_id":"n2","ts":"2026-03-01T10:00:00Z","type":"blocked","wa_id":"393331234567"}`,
		`{"event_id":"n3","ts":"2026-03-01T10:00:00Z","type":"blocked","contact_id":"c_given"}`,
		`{"event_id":"n4","ts":"2026-03-01T10:00:00Z","type":"blocked","phone":"393331234567","contact_id":"c_x"}`,
		`{"event_id":"n5","ts":"2026-03-01T10:00:00Z","type":"blocked","phone":"12"}`,
	}, "\n")), 0o644))
	csvFile := filepath.Join(src, "bsp.csv")
	require.NoError(t, os.WriteFile(csvFile, []byte("event_id,ts,type,message_id,wa_id\nc1,2026-03-01T09:00:00Z,sent,wamid.1,393331234567\nc2,2026-03-01T09:00:00Z,sent,wamid.2,\n"), 0o644))

	// A Parquet file with a phone column.
	pq := filepath.Join(src, "export.parquet")
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	_, err = db.Exec(`COPY (SELECT 'p1' AS event_id, TIMESTAMPTZ '2026-03-01 10:00:00+00' AS ts, 'opted_out' AS type, '+393331234567' AS phone) TO ` + store.SQLString(pq) + ` (FORMAT parquet)`)
	require.NoError(t, err)
	db.Close()

	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	defer w.Close()
	rep, err := Import(context.Background(), w, []string{ndjson, csvFile, pq})
	require.NoError(t, err)
	assert.Equal(t, 6, rep.Written)
	require.Equal(t, 2, rep.RejectedN, "%v", rep.Rejected)
	assert.Contains(t, rep.Rejected[0].Reason, "not both")
	assert.Equal(t, 4, rep.Rejected[0].Line)
	assert.Contains(t, rep.Rejected[1].Reason, "digits")
	assert.NotContains(t, rep.Rejected[1].Reason, "12")

	got := contactIDs(t, dir)
	for _, id := range []string{"n1", "n2", "c1", "p1"} {
		assert.Equal(t, want, got[id], id)
	}
	assert.Equal(t, "c_given", got["n3"], "a contact_id column is taken as already pseudonymous")
	assert.Equal(t, "", got["c2"])
}

func TestImportPhoneNeedsKey(t *testing.T) {
	t.Setenv(pseudo.KeyEnv, "")
	src := t.TempDir()
	csvFile := filepath.Join(src, "bsp.csv")
	require.NoError(t, os.WriteFile(csvFile, []byte("event_id,ts,type,message_id,phone\nc1,2026-03-01T09:00:00Z,sent,wamid.1,393331234567\n"), 0o644))
	ndjson := filepath.Join(src, "crm.ndjson")
	require.NoError(t, os.WriteFile(ndjson, []byte(`{"event_id":"n1","ts":"2026-03-01T10:00:00Z","type":"blocked","phone":"393331234567"}`+"\n"), 0o644))

	w, err := store.OpenWriter(t.TempDir())
	require.NoError(t, err)
	defer w.Close()
	_, err = Import(context.Background(), w, []string{csvFile})
	require.Error(t, err)
	assert.Contains(t, err.Error(), pseudo.KeyEnv)

	rep, err := Import(context.Background(), w, []string{ndjson})
	require.NoError(t, err)
	require.Equal(t, 1, rep.RejectedN)
	assert.Contains(t, rep.Rejected[0].Reason, pseudo.KeyEnv)
	assert.NotContains(t, rep.Rejected[0].Reason, "393331234567")
}
