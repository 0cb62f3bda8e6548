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

// TestRetentionAtStart: with RetentionDays set, the receiver deletes the events and raw
// archive days of the UTC days before the last RetentionDays when it starts, and keeps the
// rest, including the first kept day's events that are already older than RetentionDays.
func TestRetentionAtStart(t *testing.T) {
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	now := time.Now().UTC()
	if left := now.Truncate(24 * time.Hour).Add(24 * time.Hour).Sub(now); left < 10*time.Second {
		// The receiver's cutoff must be this day's: not one a midnight moved since.
		time.Sleep(left + 100*time.Millisecond)
		now = time.Now().UTC()
	}
	// The first kept day starts at midnight UTC ten days ago.
	y, m, d := now.AddDate(0, 0, -10).Date()
	firstKept := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	_, err = w.Append(context.Background(), []events.Event{
		{EventID: "old", TS: now.AddDate(0, 0, -20), Type: events.TypeBlocked, ContactID: "c"},
		{EventID: "last-dropped", TS: firstKept.Add(-time.Second), Type: events.TypeBlocked, ContactID: "c"},
		{EventID: "first-kept", TS: firstKept, Type: events.TypeBlocked, ContactID: "c"},
		{EventID: "new", TS: now.AddDate(0, 0, -2), Type: events.TypeBlocked, ContactID: "c"},
	}, store.AppendOptions{})
	require.NoError(t, err)
	w.Close()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, RawDir), 0o755))
	oldRaw := filepath.Join(dir, RawDir, now.AddDate(0, 0, -20).Format("2006-01-02")+".ndjson")
	lastDroppedRaw := filepath.Join(dir, RawDir, firstKept.AddDate(0, 0, -1).Format("2006-01-02")+".ndjson")
	firstKeptRaw := filepath.Join(dir, RawDir, firstKept.Format("2006-01-02")+".ndjson")
	newRaw := filepath.Join(dir, RawDir, now.Format("2006-01-02")+".ndjson")
	for _, f := range []string{oldRaw, lastDroppedRaw, firstKeptRaw, newRaw} {
		require.NoError(t, os.WriteFile(f, []byte("{}\n"), 0o644))
	}

	s, err := New(Config{StoreDir: dir, APIToken: testAPI, Hasher: testHasher(t), CompactEvery: -1, RetentionDays: 10})
	require.NoError(t, err)
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := storedEvents(t, dir)
		if _, ok := got["old"]; !ok {
			assert.NotContains(t, got, "last-dropped")
			assert.Contains(t, got, "first-kept", "older than 10 days, but of the first kept day")
			assert.Contains(t, got, "new")
			break
		}
		require.True(t, time.Now().Before(deadline), "retention did not run")
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	assert.NoFileExists(t, oldRaw)
	assert.NoFileExists(t, lastDroppedRaw)
	assert.FileExists(t, firstKeptRaw)
	assert.FileExists(t, newRaw)
}

// The cutoff moves once a day, to midnight UTC: hourly passes within a day find nothing
// new to delete, so the store (and every data source's facts) is rewritten once a day.
func TestRetentionCutoffIsADayBoundary(t *testing.T) {
	for _, c := range []struct {
		now  string
		days int
		want string
	}{
		{"2026-12-03T14:05:00Z", 30, "2026-11-03T00:00:00Z"},
		{"2026-12-03T00:00:00Z", 30, "2026-11-03T00:00:00Z"},
		{"2026-12-03T23:59:59Z", 30, "2026-11-03T00:00:00Z"},
		{"2026-12-04T00:00:00Z", 30, "2026-11-04T00:00:00Z"},
		{"2026-03-01T05:00:00+09:00", 1, "2026-02-27T00:00:00Z"}, // 2026-02-28T20:00Z
	} {
		now, err := time.Parse(time.RFC3339, c.now)
		require.NoError(t, err)
		assert.Equal(t, c.want, retentionCutoff(now, c.days).Format(time.RFC3339), "%s, %d days", c.now, c.days)
	}
}
