package kpi_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

func TestZZOOM(t *testing.T) {
	dir := os.Getenv("PROBE_STORE")
	if dir == "" {
		t.Skip()
	}
	tmp := t.TempDir()
	db, err := store.OpenDuckDB(filepath.Join(tmp, "x.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{"SET memory_limit='256MB'", "SET threads=2", "SET temp_directory='" + tmp + "/spill'"} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "segments", "*.parquet"))
	scan := "read_parquet(['" + strings.Join(files, "','") + "'], filename=true, file_row_number=true, union_by_name=true)"
	for _, q := range strings.Split(os.Getenv("PROBE_SQL"), ";;") {
		q = strings.ReplaceAll(q, "SCAN", scan)
		s := time.Now()
		_, err := db.Exec(q)
		var hwm string
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM") {
				hwm = l
			}
		}
		fmt.Printf("%s -> %v in %s (%s)\n", q[:min(len(q), 120)], err, time.Since(s), hwm)
	}
}
