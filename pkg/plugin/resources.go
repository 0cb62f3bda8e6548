package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/resource/httpadapter"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
)

// newResourceHandler registers the editors' routes (docs/ARCHITECTURE.md, "Resource API").
func newResourceHandler(d *Datasource) backend.CallResourceHandler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", getOnly(handleMetrics))
	mux.HandleFunc("/dimensions", getOnly(handleDimensions))
	mux.HandleFunc("/shapes", getOnly(handleShapes))
	mux.HandleFunc("/values", getOnly(d.handleValues))
	return httpadapter.New(mux)
}

func getOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use GET")
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

type metricInfo struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Area          string   `json:"area"`
	Unit          string   `json:"unit"`
	Kind          string   `json:"kind"`
	Description   string   `json:"description"`
	TimeSemantics string   `json:"timeSemantics"`
	Shapes        []string `json:"shapes"`
}

func handleMetrics(w http.ResponseWriter, _ *http.Request) {
	out := make([]metricInfo, 0, len(kpi.Metrics))
	for i := range kpi.Metrics {
		m := &kpi.Metrics[i]
		out = append(out, metricInfo{ID: m.ID, Name: m.Name, Area: string(m.Area), Unit: m.Unit(), Kind: string(m.Kind),
			Description: m.Description, TimeSemantics: m.TimeSemantics(), Shapes: m.Shapes()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"metrics": out})
}

func handleDimensions(w http.ResponseWriter, _ *http.Request) {
	type dim struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	out := make([]dim, 0, len(kpi.Dimensions))
	for _, d := range kpi.Dimensions {
		out = append(out, dim{d.ID, d.Name, d.Description})
	}
	writeJSON(w, http.StatusOK, map[string]any{"dimensions": out})
}

func handleShapes(w http.ResponseWriter, _ *http.Request) {
	type shape struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	out := make([]shape, 0, len(kpi.QueryTypes))
	for _, s := range kpi.QueryTypes {
		out = append(out, shape{s.ID, s.Name, s.Description})
	}
	writeJSON(w, http.StatusOK, map[string]any{"shapes": out})
}

// handleValues: GET values?dimension=D&q=TEXT&limit=N → distinct values containing TEXT.
func (d *Datasource) handleValues(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query()
	dim := p.Get("dimension")
	if _, ok := kpi.LookupDimension(dim); !ok {
		writeError(w, http.StatusBadRequest, "unknown or missing dimension "+strconv.Quote(dim)+"; allowed: "+joinIDs(kpi.DimensionIDs()))
		return
	}
	limit := 100
	if s := p.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > kpi.MaxValuesLimit {
			writeError(w, http.StatusBadRequest, "limit must be a whole number from 1 to "+strconv.Itoa(kpi.MaxValuesLimit))
			return
		}
		limit = n
	}
	engine, err := d.getEngine()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	q := &kpi.Query{QueryType: kpi.TypeValues, Dimension: dim, Search: p.Get("q")}
	if len(q.Search) > kpi.MaxValueLength {
		writeError(w, http.StatusBadRequest, "q is too long (at most "+strconv.Itoa(kpi.MaxValueLength)+" bytes)")
		return
	}
	release, err := d.acquireSlot(r.Context(), false)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "too many queries running at once; try again")
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), d.settings.QueryTimeout())
	defer cancel()
	vals, truncated, err := engine.Values(ctx, q, limit)
	if err != nil {
		status := http.StatusInternalServerError
		if ctx.Err() != nil {
			status = http.StatusGatewayTimeout
		}
		writeError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dimension": dim, "values": vals, "truncated": truncated})
}

func joinIDs(ids []string) string {
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ", "
		}
		out += id
	}
	return out
}
