// Package plugin is the Grafana data source: it answers QueryData, CheckHealth and
// CallResource for one data source instance from the KPI engine.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/grafana/grafana-plugin-sdk-go/backend/tracing"
	"go.opentelemetry.io/otel/attribute"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/demo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/models"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// PluginID is the plugin's id in plugin.json.
const PluginID = "blueticks-whatsapp-datasource"

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// Datasource is one configured Blue Ticks data source.
type Datasource struct {
	settings  *models.Settings
	resources backend.CallResourceHandler
	slots     chan struct{} // bounds the queries running at once in this instance
	alertSlot chan struct{} // one more, for alert rules only: dashboards cannot starve alerting

	mu       sync.Mutex
	engine   *kpi.Engine
	openErr  error
	disposed bool // after Dispose no engine opens: nothing would close it
}

// NewDatasource is the instance factory: settings are decoded and validated once here.
// A store that does not exist yet is not fatal: queries and the health check say so, and
// the store is looked for again on the next request.
func NewDatasource(_ context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	settings, err := models.Load(s)
	if err != nil {
		return nil, err
	}
	return New(settings), nil
}

// New builds a data source from loaded settings.
func New(settings *models.Settings) *Datasource {
	d := &Datasource{settings: settings, slots: make(chan struct{}, settings.MaxConcurrentQueries), alertSlot: make(chan struct{}, 1)}
	d.resources = newResourceHandler(d)
	_, _ = d.getEngine() // open early so the first query is fast; errors are reported per request
	return d
}

// Dispose closes the engine when Grafana replaces or removes the instance.
func (d *Datasource) Dispose() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.disposed = true
	if d.engine != nil {
		_ = d.engine.Close()
		d.engine = nil
	}
}

// storeLabel says where the data comes from, for messages.
func (d *Datasource) storeLabel() string {
	if d.settings.StorePath == "" {
		return "the embedded demo store"
	}
	return "store " + d.settings.StorePath
}

// getEngine opens the engine on first use (and again after a failure).
func (d *Datasource) getEngine() (*kpi.Engine, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.engine != nil {
		return d.engine, nil
	}
	if d.disposed {
		// A query that waited for a slot while Grafana replaced this instance: an engine
		// opened now would never be closed (and would hold the store's kept facts).
		return nil, errors.New("this data source instance was replaced (its settings changed); run the query again")
	}
	opts := kpi.Options{
		MemoryLimitMB:      d.settings.MemoryLimitMB,
		BuildMemoryLimitMB: d.settings.BuildMemoryLimitMB,
		Threads:            d.settings.Threads,
		MaxRows:            d.settings.MaxRows,
		Demo:               demo.Config{Events: d.settings.DemoEvents, Days: 90, Seed: 1},
		FactsDir:           d.settings.KeptFactsDir(),
	}
	if d.settings.StorePath != "" {
		if err := checkFileKind(d.settings.StorePath); err != nil {
			d.openErr = err
			return nil, err
		}
		src, err := store.OpenSource(d.settings.StorePath)
		if err != nil {
			d.openErr = err
			return nil, err
		}
		opts.Source = src
	}
	e, err := kpi.New(opts)
	if err != nil {
		d.openErr = err
		return nil, err
	}
	d.engine, d.openErr = e, nil
	return e, nil
}

// checkFileKind refuses a store path that is neither a regular file nor a directory (a
// FIFO would block the open for ever, a device is not a store).
func checkFileKind(path string) error {
	if strings.ContainsAny(path, "*?[") {
		return nil // a glob: OpenSource lists it
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().IsRegular() || info.IsDir() {
		return nil // OpenSource says what is wrong
	}
	return fmt.Errorf("store path %q is a %s, not a store directory, a .duckdb file or .parquet files", path, info.Mode().Type())
}

// fromAlert reports whether Grafana's alerting sent the request.
func fromAlert(headers map[string]string) bool {
	for k, v := range headers {
		if strings.EqualFold(k, "FromAlert") || strings.EqualFold(k, "http_FromAlert") {
			return v == "true"
		}
	}
	return false
}

// errSlotWait is a query that waited its whole timeout for a free slot.
var errSlotWait = errors.New("waited for a free query slot")

// acquireSlot waits at most the query timeout for one of the instance's slots; alert
// rules may also take the slot kept for them.
func (d *Datasource) acquireSlot(ctx context.Context, alert bool) (func(), error) {
	var alertSlot chan struct{}
	if alert {
		alertSlot = d.alertSlot
	}
	wait, cancel := context.WithTimeout(ctx, d.settings.QueryTimeout())
	defer cancel()
	select {
	case d.slots <- struct{}{}:
		return func() { <-d.slots }, nil
	case alertSlot <- struct{}{}:
		return func() { <-alertSlot }, nil
	case <-wait.Done():
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errSlotWait
	}
}

// QueryData answers each query of the request on its own, concurrently within the
// instance's slots: a bad query gets its own error and the others still answer.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	alert := fromAlert(req.Headers)
	resp := backend.NewQueryDataResponse()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, q := range req.Queries {
		wg.Add(1)
		go func(q backend.DataQuery) {
			defer wg.Done()
			r := d.query(ctx, q, alert)
			mu.Lock()
			resp.Responses[q.RefID] = r
			mu.Unlock()
		}(q)
	}
	wg.Wait()
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, q backend.DataQuery, alert bool) (res backend.DataResponse) {
	logger := log.DefaultLogger.FromContext(ctx)
	ctx, span := tracing.DefaultTracer().Start(ctx, "blueticks.query")
	defer span.End()
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			logger.Error("query panicked", "refId", q.RefID, "panic", r, "stack", string(debug.Stack()))
			res = backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourcePlugin,
				fmt.Sprintf("internal error answering this query: %v", r))
		}
	}()
	parsed, err := kpi.ParseQuery(q.JSON)
	if err != nil {
		return errorResponse(err, d.settings)
	}
	span.SetAttributes(attribute.String("queryType", parsed.QueryType))
	release, err := d.acquireSlot(ctx, alert)
	if err != nil {
		return errorResponse(err, d.settings)
	}
	defer release()
	engine, err := d.getEngine()
	if err != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, err.Error())
	}
	qctx, cancel := context.WithTimeout(ctx, d.settings.QueryTimeout())
	defer cancel()
	frames, err := engine.Run(qctx, kpi.Request{
		Query: parsed, From: q.TimeRange.From, To: q.TimeRange.To,
		Interval: q.Interval, MaxDataPoints: q.MaxDataPoints,
	})
	logger.Debug("query answered", "refId", q.RefID, "queryType", parsed.QueryType, "frames", len(frames),
		"duration", time.Since(start), "error", err)
	if err != nil {
		if qctx.Err() != nil && ctx.Err() == nil {
			err = context.DeadlineExceeded
		}
		return errorResponse(err, d.settings)
	}
	for _, f := range frames {
		f.RefID = q.RefID
	}
	return backend.DataResponse{Frames: frames}
}

// errorResponse maps an error to a response a user can act on, tagged with its source.
func errorResponse(err error, s *models.Settings) backend.DataResponse {
	switch {
	case errors.Is(err, kpi.ErrBadQuery):
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return backend.ErrDataResponseWithSource(backend.StatusTimeout, backend.ErrorSourceDownstream,
			fmt.Sprintf("query timed out after %ds (the data source's queryTimeoutSeconds): narrow the time range or the groups", s.QueryTimeoutSeconds))
	case errors.Is(err, context.Canceled):
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, "query canceled")
	case errors.Is(err, errSlotWait):
		return backend.ErrDataResponseWithSource(backend.StatusTimeout, backend.ErrorSourceDownstream,
			fmt.Sprintf("query waited %ds for a free slot: the data source runs at most %d queries at once (maxConcurrentQueries); try again or raise it", s.QueryTimeoutSeconds, s.MaxConcurrentQueries))
	case errors.Is(err, kpi.ErrStore), errors.Is(err, kpi.ErrBuildMemory), errors.Is(err, kpi.ErrBuildKilled):
		return backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourceDownstream, err.Error())
	}
	return backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourcePlugin, err.Error())
}

// CheckHealth reports where the store is, how many events it holds, the time range
// covered and the newest event's age.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	engine, err := d.getEngine()
	if err != nil {
		return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: err.Error()}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.settings.QueryTimeout())
	defer cancel()
	st, err := engine.Stats(ctx)
	if err != nil {
		return &backend.CheckHealthResult{Status: backend.HealthStatusError,
			Message: fmt.Sprintf("%s: %v", d.storeLabel(), err)}, nil
	}
	msg := fmt.Sprintf("OK: %s holds %d events", d.storeLabel(), st.Events)
	if st.Events > 0 {
		msg += fmt.Sprintf(" from %s to %s; newest event %s ago",
			st.MinTS.UTC().Format(time.RFC3339), st.MaxTS.UTC().Format(time.RFC3339),
			time.Since(st.MaxTS).Round(time.Second))
	} else {
		msg += " (empty: import events with `blueticks import`)"
	}
	if !st.RebuildingSince.IsZero() {
		msg += fmt.Sprintf("; rebuilding the facts in full in the background since %s (%s)",
			st.RebuildingSince.UTC().Format(time.RFC3339), time.Since(st.RebuildingSince).Round(time.Second))
	}
	details := fmt.Sprintf(`{"store":%q,"events":%d,"files":%d,"version":%q,"fullBuilds":%d,"increments":%d}`,
		d.storeLabel(), st.Events, st.Files, st.Version, st.FullBuilds, st.Increments)
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: msg, JSONDetails: []byte(details)}, nil
}

// CallResource serves the editors' resources (resources.go).
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	return d.resources.CallResource(ctx, req, sender)
}
