package demo

import (
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

// TestMemory streams DEMO_MEMORY events and reports the heap along the way: it must stay
// flat however long the history.
func TestMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("DEMO_MEMORY"))
	if n == 0 {
		t.Skip("set DEMO_MEMORY=100000000")
	}
	count := 0
	var ms runtime.MemStats
	var peak uint64
	err := Generate(Config{Events: n, Seed: 9, End: testEnd}, func(*events.Event) error {
		count++
		if count%5_000_000 == 0 {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak {
				peak = ms.HeapInuse
			}
			t.Logf("%d events, heap in use %d MB", count, ms.HeapInuse>>20)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, peak heap %d MB", count, peak>>20)
}
