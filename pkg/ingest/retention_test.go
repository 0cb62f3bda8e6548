package ingest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// TestRetentionAtStart: with RetentionDays set, the receiver deletes older events and raw
// archive days when it starts, and keeps the rest.
func TestRetentionAtStart(t *testing.T) {
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	now := time.Now().UTC()
	_, err = w.Append(context.Background(), []events.Event{
		{EventID: "old", TS: now.AddDate(0, 0, -20), Type: events.TypeBlocked, ContactID: "c"},
		{EventID: "new", TS: now.AddDate(0, 0, -2), Type: events.TypeBlocked, ContactID: "c"},
	}, store.AppendOptions{})
	require.NoError(t, err)
	w.Close()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, RawDir), 0o755))
	oldRaw := filepath.Join(dir, RawDir, now.AddDate(0, 0, -20).Format("2006-01-02")+".ndjson")
	newRaw := filepath.Join(dir, RawDir, now.Format("2006-01-02")+".ndjson")
	require.NoError(t, os.WriteFile(oldRaw, []byte("{}\n"), 0o644))
	require.NoError(t, os.WriteFile(newRaw, []byte("{}\n"), 0o644))

	s, err := New(Config{StoreDir: dir, APIToken: testAPI, Hasher: testHasher(t), CompactEvery: -1, RetentionDays: 10})
	require.NoError(t, err)
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := storedEvents(t, dir)
		if _, ok := got["old"]; !ok {
			assert.Contains(t, got, "new")
			break
		}
		require.True(t, time.Now().Before(deadline), "retention did not run")
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	assert.NoFileExists(t, oldRaw)
	assert.FileExists(t, newRaw)
}
