// Package harness starts the built plugin binary the way Grafana does (go-plugin handshake,
// gRPC plugin protocol v2) and talks to it with the SDK's real request and response types.
package harness

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	goplugin "github.com/hashicorp/go-plugin"
)

// Handshake is Grafana's side of the plugin handshake.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  grpcplugin.ProtocolVersion,
	MagicCookieKey:   grpcplugin.MagicCookieKey,
	MagicCookieValue: grpcplugin.MagicCookieValue,
}

// PluginSet is what Grafana dispenses from a backend data source plugin.
func PluginSet() map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{grpcplugin.ProtocolVersion: {
		"data":        &grpcplugin.DataGRPCPlugin{},
		"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
		"resource":    &grpcplugin.ResourceGRPCPlugin{},
	}}
}

// RepoRoot finds the module root from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

// Binary returns the plugin binary: $BLUETICKS_PLUGIN_BINARY if set, else one built once
// per test process from ./pkg.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BLUETICKS_PLUGIN_BINARY"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "blueticks-plugin-")
		if err != nil {
			buildErr = err
			return
		}
		builtPath = filepath.Join(dir, "gpx_blueticks")
		cmd := exec.Command("go", "build", "-tags", "arrow_json_stdlib", "-o", builtPath, "./pkg")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = &buildError{string(out), err}
		}
	})
	if buildErr != nil {
		t.Fatalf("build plugin: %v", buildErr)
	}
	return builtPath
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// Client is Grafana's end of one running plugin process.
type Client struct {
	pc       *goplugin.Client
	data     pluginv2.DataClient
	diag     pluginv2.DiagnosticsClient
	resource pluginv2.ResourceClient
	// Settings are sent with every request that has none.
	Settings backend.DataSourceInstanceSettings
}

// Plugin builds the binary and starts it on the embedded demo store.
func Plugin(t testing.TB) *Client {
	t.Helper()
	return Start(t, exec.Command(Binary(t)), DemoSettings())
}

// DemoSettings are the provisioned demo data source's settings.
func DemoSettings() backend.DataSourceInstanceSettings {
	return backend.DataSourceInstanceSettings{ID: 1, UID: "blueticks-demo", Name: "Blue Ticks (demo)",
		JSONData: json.RawMessage(`{"storePath":""}`), DecryptedSecureJSONData: map[string]string{}}
}

// StoreSettings point a data source at a store path.
func StoreSettings(path string) backend.DataSourceInstanceSettings {
	b, _ := json.Marshal(map[string]any{"storePath": path})
	return backend.DataSourceInstanceSettings{ID: 2, UID: "blueticks-store", Name: "Blue Ticks",
		JSONData: b, DecryptedSecureJSONData: map[string]string{}}
}

// Start runs cmd as a plugin and completes the handshake; the process is killed when the
// test ends.
func Start(t testing.TB, cmd *exec.Cmd, settings backend.DataSourceInstanceSettings) *Client {
	t.Helper()
	c, err := StartWith(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: PluginSet(),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		SyncStdout:       os.Stderr,
		SyncStderr:       os.Stderr,
	}, settings)
	if err != nil {
		t.Fatalf("start plugin: %v", err)
	}
	t.Cleanup(c.Kill)
	return c
}

// StartWith starts a plugin with a full go-plugin client configuration.
func StartWith(cfg *goplugin.ClientConfig, settings backend.DataSourceInstanceSettings) (*Client, error) {
	pc := goplugin.NewClient(cfg)
	rpc, err := pc.Client()
	if err != nil {
		pc.Kill()
		return nil, err
	}
	c := &Client{pc: pc, Settings: settings}
	for name, dst := range map[string]any{"data": &c.data, "diagnostics": &c.diag, "resource": &c.resource} {
		raw, err := rpc.Dispense(name)
		if err != nil {
			pc.Kill()
			return nil, err
		}
		switch d := dst.(type) {
		case *pluginv2.DataClient:
			*d = raw.(pluginv2.DataClient)
		case *pluginv2.DiagnosticsClient:
			*d = raw.(pluginv2.DiagnosticsClient)
		case *pluginv2.ResourceClient:
			*d = raw.(pluginv2.ResourceClient)
		}
	}
	return c, nil
}

// Kill stops the plugin process.
func (c *Client) Kill() { c.pc.Kill() }

func (c *Client) pluginContext(pc backend.PluginContext) backend.PluginContext {
	if pc.DataSourceInstanceSettings == nil {
		s := c.Settings
		pc.DataSourceInstanceSettings = &s
	}
	if pc.PluginID == "" {
		pc.PluginID = "blueticks-whatsapp-datasource"
	}
	if pc.OrgID == 0 {
		pc.OrgID = 1
	}
	return pc
}

// QueryData sends a request over the plugin protocol.
func (c *Client) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	req.PluginContext = c.pluginContext(req.PluginContext)
	resp, err := c.data.QueryData(ctx, backend.ToProto().QueryDataRequest(req))
	if err != nil {
		return nil, err
	}
	return backend.FromProto().QueryDataResponse(resp)
}

// CheckHealth asks the plugin for its health.
func (c *Client) CheckHealth(ctx context.Context) (*backend.CheckHealthResult, error) {
	pc := c.pluginContext(backend.PluginContext{})
	resp, err := c.diag.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: backend.ToProto().PluginContext(pc)})
	if err != nil {
		return nil, err
	}
	return backend.FromProto().CheckHealthResponse(resp), nil
}

// CallResource sends a GET (or other method) to a resource path and returns the first
// response message.
func (c *Client) CallResource(ctx context.Context, method, path string) (*backend.CallResourceResponse, error) {
	pc := c.pluginContext(backend.PluginContext{})
	p, _, _ := strings.Cut(path, "?")
	req := &backend.CallResourceRequest{PluginContext: pc, Method: method, Path: p, URL: path}
	stream, err := c.resource.CallResource(ctx, backend.ToProto().CallResourceRequest(req))
	if err != nil {
		return nil, err
	}
	msg, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	return backend.FromProto().CallResourceResponse(msg), nil
}
