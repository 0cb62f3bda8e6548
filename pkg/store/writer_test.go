package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

func demoEvents(tb testing.TB, n int) []events.Event {
	tb.Helper()
	var out []events.Event
	err := demo.Generate(demo.Config{Events: n, Days: 30, Seed: 3}, func(e *events.Event) error {
		if len(out) < n {
			out = append(out, e.Clone())
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// BenchmarkAppend: one Append (one segment) of demo events, the receiver's flush size
// (12 000) and the importer's batch (500 000), each into a new store; with SkipExisting
// the store already holds one segment of as many other events.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{12_000, 500_000} {
		evs := demoEvents(b, n)
		old := make([]events.Event, len(evs))
		for i := range evs {
			old[i] = evs[i]
			old[i].EventID += "-old"
		}
		for _, skip := range []bool{false, true} {
			b.Run(fmt.Sprintf("events=%d/skipExisting=%v", len(evs), skip), func(b *testing.B) {
				var el time.Duration
				for i := 0; i < b.N; i++ {
					w, err := store.OpenWriter(b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					if skip {
						if _, err := w.Append(context.Background(), old, store.AppendOptions{}); err != nil {
							b.Fatal(err)
						}
					}
					start := time.Now()
					res, err := w.Append(context.Background(), evs, store.AppendOptions{SkipExisting: skip})
					el += time.Since(start)
					w.Close()
					if err != nil {
						b.Fatal(err)
					}
					if res.Written+res.Duplicates != len(evs) || res.Written == 0 {
						b.Fatalf("%+v", res)
					}
				}
				b.ReportMetric(float64(len(evs))*float64(b.N)/el.Seconds(), "events/s")
			})
		}
	}
}
