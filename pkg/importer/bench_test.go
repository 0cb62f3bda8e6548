package importer_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/importer"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// The import benchmarks read files of demo events (every column the demo fills, as a BSP
// export would have them). Size: BLUETICKS_BENCH_IMPORT_EVENTS (default 300 000; the
// numbers in docs/BENCHMARKS.md use 2 000 000). Each iteration imports the whole file into
// a new store; events/s is rows read per second of wall time, from opening the file to the
// last segment published.
//
//	BLUETICKS_BENCH_IMPORT_EVENTS=2000000 go test ./pkg/importer -run '^$' -bench Import -benchtime 3x

var (
	benchDir       string // removed by TestMain
	benchFilesOnce sync.Once
	benchFiles     map[string]string
	benchEvents    int
	benchFilesErr  error
)

func benchInput(b *testing.B, format string) (string, int) {
	benchFilesOnce.Do(func() {
		n := 300_000
		if s := os.Getenv("BLUETICKS_BENCH_IMPORT_EVENTS"); s != "" {
			n, benchFilesErr = strconv.Atoi(s)
			if benchFilesErr != nil {
				return
			}
		}
		dir, err := os.MkdirTemp("", "blueticks-import-bench-")
		if err != nil {
			benchFilesErr = err
			return
		}
		benchDir = dir
		benchFiles = map[string]string{"ndjson": filepath.Join(dir, "events.ndjson"), "csv": filepath.Join(dir, "events.csv")}
		benchEvents, benchFilesErr = writeDemoFiles(n, benchFiles["ndjson"], benchFiles["csv"])
	})
	if benchFilesErr != nil {
		b.Fatal(benchFilesErr)
	}
	return benchFiles[format], benchEvents
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// writeDemoFiles writes about n demo events as NDJSON (the events' JSON form) and CSV (all
// columns, empty for missing values).
func writeDemoFiles(n int, ndjsonPath, csvPath string) (int, error) {
	nf, err := os.Create(ndjsonPath)
	if err != nil {
		return 0, err
	}
	defer nf.Close()
	cf, err := os.Create(csvPath)
	if err != nil {
		return 0, err
	}
	defer cf.Close()
	nw, cwb := bufio.NewWriterSize(nf, 1<<20), bufio.NewWriterSize(cf, 1<<20)
	cw := csv.NewWriter(cwb)
	header := make([]string, len(events.Columns))
	for i, c := range events.Columns {
		header[i] = c.Name
	}
	if err := cw.Write(header); err != nil {
		return 0, err
	}
	enc := json.NewEncoder(nw)
	rec := make([]string, len(events.Columns))
	count := 0
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	err = demo.Generate(demo.Config{Events: n, Days: 90, Seed: 7, End: end}, func(e *events.Event) error {
		count++
		if err := enc.Encode(e); err != nil {
			return err
		}
		code, val := "", ""
		if e.ErrorCode != nil {
			code = strconv.Itoa(int(*e.ErrorCode))
		}
		if e.Value != nil {
			val = strconv.FormatFloat(*e.Value, 'g', -1, 64)
		}
		copy(rec, []string{e.EventID, e.TS.UTC().Format(time.RFC3339Nano), e.Type, e.MessageID, e.ReplyTo,
			e.ConversationID, e.ContactID, e.BusinessNumber, e.Sender, e.AgentID, e.Campaign, e.Template,
			e.Category, e.Variant, e.Segment, e.Country, e.MessageType, code, val, e.Currency, e.Step,
			e.Quality, e.PricingType})
		return cw.Write(rec)
	})
	if err != nil {
		return 0, err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return 0, err
	}
	if err := nw.Flush(); err != nil {
		return 0, err
	}
	return count, cwb.Flush()
}

func benchImport(b *testing.B, format string) {
	path, n := benchInput(b, format)
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(info.Size())
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		w, err := store.OpenWriter(filepath.Join(dir, "store"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		rep, err := importer.Import(context.Background(), w, []string{path})
		total += time.Since(start)
		b.StopTimer()
		w.Close()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Read != n || rep.RejectedN != 0 || rep.Written+rep.Duplicates != n {
			b.Fatalf("imported %+v of %d rows (first rejected: %v)", rep, n, strings.TrimSpace(firstRejected(rep)))
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "events/s")
	b.ReportMetric(float64(n), "events")
}

func firstRejected(rep importer.Report) string {
	if len(rep.Rejected) == 0 {
		return ""
	}
	return rep.Rejected[0].String()
}

// BenchmarkImportNDJSON: `blueticks import` of one NDJSON file of demo events.
func BenchmarkImportNDJSON(b *testing.B) { benchImport(b, "ndjson") }

// BenchmarkImportCSV: the same events as one CSV file.
func BenchmarkImportCSV(b *testing.B) { benchImport(b, "csv") }
