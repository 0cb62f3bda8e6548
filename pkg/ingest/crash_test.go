package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// buildCLI builds the blueticks binary once per test run.
func buildCLI(t *testing.T) string {
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "blueticks-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "blueticks")
		out, err := exec.Command("go", "build", "-o", cliPath, "github.com/blueticks/blueticks-whatsapp-datasource/pkg/cmd/blueticks").CombinedOutput()
		if err != nil {
			cliErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, cliErr)
	return cliPath
}

// receiver is a `blueticks serve` subprocess.
type receiver struct {
	cmd  *exec.Cmd
	base string
	done chan error
}

func startReceiver(t *testing.T, bin, dir string, extra ...string) *receiver {
	args := append([]string{"serve", "--store", dir, "--listen", "127.0.0.1:0", "--compact-every", "500ms"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"BLUETICKS_API_TOKEN="+testAPI, "BLUETICKS_APP_SECRET="+testSecret,
		"BLUETICKS_VERIFY_TOKEN="+testVerify, "BLUETICKS_HASH_KEY="+testHashKey)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	r := &receiver{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { r.done <- cmd.Wait() }()
	select {
	case a := <-addr:
		r.base = "http://" + a
	case err := <-r.done:
		t.Fatalf("serve exited before listening: %v", err)
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("serve did not start listening within 20 s")
	}
	return r
}

func (r *receiver) kill9() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

func (r *receiver) stop(t *testing.T) {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		assert.NoError(t, err, "graceful shutdown")
	case <-time.After(30 * time.Second):
		r.kill9()
		t.Error("serve did not stop within 30 s of SIGTERM")
	}
}

// storedIDCounts reads every published segment (each must be readable: no half-written
// file is ever exposed) and counts rows per event_id.
func storedIDCounts(t *testing.T, dir string) map[string]int {
	segs, err := store.ListSegments(dir)
	require.NoError(t, err)
	out := map[string]int{}
	if len(segs) == 0 {
		return out
	}
	db, err := store.OpenDuckDB("")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT event_id, count(*) FROM read_parquet(" + store.ParquetList(segs) + ") GROUP BY event_id")
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		require.NoError(t, rows.Scan(&id, &n))
		out[id] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// TestCrashLosesNothingAcknowledged runs `blueticks serve` as a subprocess, sends events
// from concurrent clients, kills it with SIGKILL mid-stream at several points, restarts
// it, redelivers what was acknowledged (as Meta does), and checks with the plugin's engine
// that every acknowledged event is there exactly once.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI and runs subprocesses")
	}
	bin := buildCLI(t)
	dir := t.TempDir()
	base := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Hour)
	client := &http.Client{Timeout: 10 * time.Second}

	var mu sync.Mutex
	acked := map[string]string{} // event id → the NDJSON row, for redelivery
	sentIDs := map[string]bool{}
	for round, killAfter := range []time.Duration{150 * time.Millisecond, 500 * time.Millisecond, 900 * time.Millisecond} {
		r := startReceiver(t, bin, dir)
		stopSending := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < 6; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := 0; i < 2000; i++ { // bounded; the kill ends it much sooner
					select {
					case <-stopSending:
						return
					default:
					}
					var rows []string
					var ids []string
					for k := 0; k < 20; k++ {
						id := fmt.Sprintf("k%d-c%d-%d-%d", round, c, i, k)
						ids = append(ids, id)
						rows = append(rows, fmt.Sprintf(`{"event_id":%q,"ts":%q,"type":"converted","contact_id":"c_%d","value":1}`,
							id, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339), c))
					}
					mu.Lock()
					for _, id := range ids {
						sentIDs[id] = true
					}
					mu.Unlock()
					code, err := postAPI(client, r.base, strings.Join(rows, "\n"))
					if err != nil {
						return // killed
					}
					if code == 200 {
						mu.Lock()
						for k, id := range ids {
							acked[id] = rows[k]
						}
						mu.Unlock()
					}
				}
			}(c)
		}
		time.Sleep(killAfter)
		r.kill9()
		close(stopSending)
		wg.Wait()
	}
	mu.Lock()
	nAcked := len(acked)
	mu.Unlock()
	require.Greater(t, nAcked, 100, "the clients got acknowledgements before the kills")

	// Restart; redeliver a part of what was acknowledged (harmless: ids), stop gracefully.
	r := startReceiver(t, bin, dir)
	var again []string
	for _, row := range acked {
		again = append(again, row)
		if len(again) == 500 {
			break
		}
	}
	code, err := postAPI(client, r.base, strings.Join(again, "\n"))
	require.NoError(t, err)
	require.Equal(t, 200, code)
	r.stop(t)

	counts := storedIDCounts(t, dir)
	missing := 0
	for id := range acked {
		if counts[id] == 0 {
			missing++
		}
	}
	assert.Zero(t, missing, "acknowledged events lost after kill -9")
	for id := range counts {
		assert.True(t, sentIDs[id], "stored an id never sent: %s", id)
	}

	// The plugin's view: deduplicated, each event once.
	eng := newEngine(t, dir)
	n, err := conversionsTotal(context.Background(), eng, base.Add(-time.Hour), time.Now().Add(time.Hour))
	require.NoError(t, err)
	assert.Equal(t, float64(len(counts)), n, "the engine counts each stored event once")
	assert.GreaterOrEqual(t, int(n), nAcked)
	t.Logf("acknowledged %d events across 3 kills; %d distinct stored (the rest were in flight when killed); %d published segments",
		nAcked, len(counts), len(mustSegments(t, dir)))
}

func mustSegments(t *testing.T, dir string) []store.Segment {
	segs, err := store.ListSegments(dir)
	require.NoError(t, err)
	return segs
}
