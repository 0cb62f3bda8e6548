package kpi_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// A plugin killed by Grafana never closes its engine: the next engine removes the work
// directories of processes that are gone, and Close removes its own.
func TestEngineWorkDirsCleanedUp(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("process probing is unix-only")
	}
	stale := filepath.Join(os.TempDir(), "blueticks-engine-4194303-test")
	require.NoError(t, os.MkdirAll(stale, 0o755))
	mine, _ := filepath.Glob(filepath.Join(os.TempDir(), "blueticks-engine-"+itoa(os.Getpid())+"-*"))

	dir := t.TempDir()
	require.NoError(t, store.Init(dir))
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	e, err := kpi.New(kpi.Options{Source: src})
	require.NoError(t, err)
	assert.NoDirExists(t, stale, "the dead process's directory is gone")
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "blueticks-engine-"+itoa(os.Getpid())+"-*"))
	assert.Len(t, after, len(mine)+1, "this engine has its own directory")
	require.NoError(t, e.Close())
	after, _ = filepath.Glob(filepath.Join(os.TempDir(), "blueticks-engine-"+itoa(os.Getpid())+"-*"))
	assert.Len(t, after, len(mine), "Close removes it")
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}

// After a full build the engine serves from a fresh DuckDB instance even when the build's
// memory limit equals the serving one: closing the build's instance is what gives its
// memory back to the system (about 360 → 110 MB RSS after a 10M build at 256 MB).
func TestFullBuildServesFromFreshInstance(t *testing.T) {
	dir := t.TempDir()
	w, err := store.OpenWriter(dir)
	require.NoError(t, err)
	_, err = w.Append(context.Background(), []events.Event{
		{EventID: "s1", TS: time.Now().Add(-time.Hour), Type: events.TypeSent, MessageID: "m1", ContactID: "c1"},
	}, store.AppendOptions{})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	e, err := kpi.New(kpi.Options{Source: src, MemoryLimitMB: 128, BuildMemoryLimitMB: 128})
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.Refresh(context.Background()))

	var spill string
	require.NoError(t, e.DB().QueryRow("SELECT current_setting('temp_directory')").Scan(&spill))
	assert.Equal(t, "spill-g1", filepath.Base(spill), "the serving instance, not the build's")
}
