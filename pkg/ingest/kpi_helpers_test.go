package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// newEngine opens the plugin's query engine on a store, checking for new segments often.
func newEngine(t testing.TB, dir string) *kpi.Engine {
	src, err := store.OpenSource(dir)
	require.NoError(t, err)
	e, err := kpi.New(kpi.Options{Source: src, Threads: 1, MemoryLimitMB: 256, CheckEvery: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

// conversionsTotal asks the engine, as a panel would, for all converted events in a range.
func conversionsTotal(ctx context.Context, e *kpi.Engine, from, to time.Time) (float64, error) {
	q, err := kpi.ParseQuery([]byte(`{"queryType":"table","metrics":["conversions_total"]}`))
	if err != nil {
		return 0, err
	}
	frames, err := e.Run(ctx, kpi.Request{Query: q, From: from, To: to, Interval: time.Hour, MaxDataPoints: 100})
	if err != nil {
		return 0, err
	}
	if len(frames) == 0 || frames[0].Rows() == 0 {
		return 0, nil
	}
	f := frames[0]
	v, ok := f.Fields[len(f.Fields)-1].ConcreteAt(0)
	if !ok {
		return 0, nil
	}
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	}
	return 0, nil
}
