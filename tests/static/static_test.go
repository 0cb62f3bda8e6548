// Package static_test proves the linux plugin binary runs with no system libraries at all,
// as on the Alpine (musl) based official Grafana image: it starts the binary inside an
// empty root directory (chroot) and answers a query over the plugin protocol.
package static_test

import (
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/tests/harness"
)

// staticBinary is $BLUETICKS_STATIC_BINARY (the Magefile's dist/ output in CI) or a fresh
// build with the Magefile's linker settings.
func staticBinary(t *testing.T) string {
	if p := os.Getenv("BLUETICKS_STATIC_BINARY"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "gpx_blueticks_linux_amd64")
	cmd := exec.Command("go", "build", "-tags", "arrow_json_stdlib", "-ldflags", "-w -s", "-o", out, "./pkg")
	cmd.Dir = harness.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "CGO_LDFLAGS=-static")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))
	return out
}

func TestStaticBinaryInEmptyRoot(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("static linking is for the linux build")
	}
	bin := staticBinary(t)

	f, err := elf.Open(bin)
	require.NoError(t, err)
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary has no dynamic loader")
	}
	libs, _ := f.ImportedLibraries()
	assert.Empty(t, libs, "a static binary needs no shared libraries")
	f.Close()

	if os.Geteuid() != 0 {
		t.Skip("chroot needs root; the ELF checks above passed")
	}
	// The empty root: only the binary, and a folder for the plugin's socket.
	root := t.TempDir()
	copyFile(t, bin, filepath.Join(root, "gpx_blueticks"))
	// The plugin (inside the chroot) creates its socket in sockDir as it sees it; seen from
	// outside that is root+sockDir. A link from sockDir to there lets Grafana's side dial
	// the address the plugin prints.
	sockDir := filepath.Join(root, "sock")
	require.NoError(t, os.MkdirAll(filepath.Join(root, sockDir), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(root, sockDir), sockDir))
	entries, _ := os.ReadDir(root)
	require.Len(t, entries, 3) // gpx_blueticks, the socket folder tree and its link

	cmd := exec.Command("/gpx_blueticks")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	// Nothing from the host but where to put the socket (go-plugin adds the handshake).
	cmd.Env = []string{"PLUGIN_UNIX_SOCKET_DIR=" + sockDir}
	c, err := harness.StartWith(&goplugin.ClientConfig{
		HandshakeConfig:  harness.Handshake,
		VersionedPlugins: harness.PluginSet(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		SyncStdout:       io.Discard,
		SyncStderr:       os.Stderr,
		StartTimeout:     time.Minute,
	}, harness.DemoSettings())
	require.NoError(t, err, "the plugin must start in an empty root")
	defer c.Kill()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := c.CheckHealth(ctx)
	require.NoError(t, err)
	assert.Equal(t, backend.HealthStatusOk, h.Status, h.Message)

	now := time.Now()
	resp, err := c.QueryData(ctx, &backend.QueryDataRequest{Queries: []backend.DataQuery{{
		RefID: "A", JSON: json.RawMessage(`{"queryType":"timeseries","metrics":["delivery_rate"],"groupBy":["business_number"],"bucket":"1d","timezone":"Europe/Rome"}`),
		TimeRange: backend.TimeRange{From: now.Add(-7 * 24 * time.Hour), To: now}, MaxDataPoints: 100, Interval: time.Hour,
	}}})
	require.NoError(t, err)
	r := resp.Responses["A"]
	require.NoError(t, r.Error)
	require.Len(t, r.Frames, 3, "one series per business number")
	v, ok := r.Frames[0].Fields[1].ConcreteAt(r.Frames[0].Rows() - 2)
	require.True(t, ok)
	assert.Greater(t, v.(float64), 0.5)
	assert.LessOrEqual(t, v.(float64), 1.0)
}

func copyFile(t *testing.T, src, dst string) {
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}
