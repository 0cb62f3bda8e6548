package kpi_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
