package kpi

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// Run answers one query. Errors in the query wrap ErrBadQuery; the rest are the engine's.
func (e *Engine) Run(ctx context.Context, r Request) (data.Frames, error) {
	if r.Query == nil {
		return nil, BadQuery("no query")
	}
	if err := r.checkRange(); err != nil {
		return nil, err
	}
	g, release, err := e.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	key, cacheable := cacheKey(g.version, r)
	if cacheable {
		if frames, ok := e.cache.get(key); ok {
			return frames, nil
		}
	}
	frames, err := e.runOn(ctx, g, r)
	if err == nil && cacheable {
		e.cache.put(key, frames)
	}
	return frames, err
}

// runOn answers r on snapshot g, without the result cache.
func (e *Engine) runOn(ctx context.Context, g *generation, r Request) (data.Frames, error) {
	q := r.Query
	switch q.QueryType {
	case TypeTimeSeries:
		s, grid, err := e.runSeries(ctx, g, r)
		if err != nil {
			return nil, err
		}
		return seriesFrames(s, q, grid), nil
	case TypeTable:
		s, _, err := e.runSeries(ctx, g, r)
		if err != nil {
			return nil, err
		}
		return data.Frames{tableFrame(s, q)}, nil
	case TypeFunnel:
		return e.runFunnel(ctx, g, r)
	case TypeAB:
		return e.runAB(ctx, g, r)
	case TypeRetention:
		return e.runRetention(ctx, g, r)
	case TypeValues:
		vals, _, err := e.values(ctx, g, q, valuesLimit(q))
		if err != nil {
			return nil, err
		}
		f := data.NewFrame(q.Dimension, data.NewField(q.Dimension, nil, vals))
		return data.Frames{f}, nil
	case TypeSQL:
		return e.runSQL(ctx, g, r)
	}
	return nil, BadQuery("unknown queryType %q", q.QueryType)
}

func valuesLimit(q *Query) int {
	if q.Limit != nil {
		return *q.Limit
	}
	return MaxValuesLimit
}

// Funnel stages, in order.
var funnelStages = []string{"sent", "delivered", "read", "engaged", "converted"}

// runFunnel counts messages by the furthest stage they reached (a replied message with
// no read receipt counts as read), so counts never grow from one stage to the next.
func (e *Engine) runFunnel(ctx context.Context, g *generation, r Request) (data.Frames, error) {
	q := r.Query
	spec := selectSpec{schema: g.schema, facts: e.opts.NoRollups, fact: FactMessage, groupBy: q.GroupBy, filters: q.Filters,
		from: r.From, to: r.To, loc: q.Location(), aggs: funnelAggs()}
	s, err := e.rawAggregate(ctx, g, &spec)
	if err != nil {
		return nil, err
	}
	rankByFirst(s, q.TopN())
	frames := data.Frames{}
	for _, k := range s.order {
		row := s.rows[k]
		labels := labelsOf(q.GroupBy, row.key)
		counts := make([]float64, len(funnelStages))
		step := make([]*float64, len(funnelStages))
		overall := make([]*float64, len(funnelStages))
		for i := range funnelStages {
			counts[i] = row.vals[i].Float64
			if i > 0 && counts[i-1] > 0 {
				v := counts[i] / counts[i-1]
				step[i] = &v
			}
			if counts[0] > 0 {
				v := counts[i] / counts[0]
				overall[i] = &v
			}
		}
		stages := append([]string(nil), funnelStages...)
		f := data.NewFrame("funnel",
			data.NewField("stage", nil, stages),
			data.NewField("messages", labels, counts).SetConfig(&data.FieldConfig{Unit: "none"}),
			data.NewField("step_rate", labels, step).SetConfig(&data.FieldConfig{Unit: "percentunit"}),
			data.NewField("overall_rate", labels, overall).SetConfig(&data.FieldConfig{Unit: "percentunit"}),
		)
		f.Meta = meta([]string{s.sql})
		frames = append(frames, f)
	}
	if len(frames) == 0 {
		zero := make([]float64, len(funnelStages))
		f := data.NewFrame("funnel", data.NewField("stage", nil, append([]string(nil), funnelStages...)),
			data.NewField("messages", nil, zero), data.NewField("step_rate", nil, make([]*float64, len(funnelStages))),
			data.NewField("overall_rate", nil, make([]*float64, len(funnelStages))))
		f.Meta = meta([]string{s.sql})
		frames = append(frames, f)
	}
	return frames, nil
}

func labelsOf(dims []string, key groupKey) data.Labels {
	if len(dims) == 0 {
		return nil
	}
	l := data.Labels{}
	for i, d := range dims {
		if i < len(key) && key[i].Valid {
			l[d] = key[i].String
		} else {
			l[d] = NoneLabel
		}
	}
	return l
}

// rawRows is an aggregate result kept as plain rows.
type rawRows struct {
	rows  map[string]*rawRow
	order []string
	sql   string
}

type rawRow struct {
	key  groupKey
	vals []sql.NullFloat64
}

func (e *Engine) rawAggregate(ctx context.Context, g *generation, spec *selectSpec) (*rawRows, error) {
	text, args := spec.sql()
	out := &rawRows{rows: map[string]*rawRow{}, sql: text}
	rows, err := g.stmts.query(ctx, text, args...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var b int64
		row := &rawRow{key: make(groupKey, len(spec.groupBy)), vals: make([]sql.NullFloat64, len(spec.aggs))}
		dest := []any{&b}
		for i := range row.key {
			dest = append(dest, &row.key[i])
		}
		for i := range row.vals {
			dest = append(dest, &row.vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return out, err
		}
		k := row.key.String()
		out.rows[k] = row
		out.order = append(out.order, k)
	}
	return out, rows.Err()
}

// rankByFirst orders rows by their first value, highest first, ties by name, keeps n.
func rankByFirst(s *rawRows, n int) {
	sort.SliceStable(s.order, func(i, j int) bool {
		a, b := s.rows[s.order[i]], s.rows[s.order[j]]
		if a.vals[0].Float64 != b.vals[0].Float64 {
			return a.vals[0].Float64 > b.vals[0].Float64
		}
		return lessKey(a.key, b.key)
	})
	if len(s.order) > n {
		s.order = s.order[:n]
	}
}

// Wilson z for a 95 % interval.
const wilsonZ = 1.959964

// Wilson gives the 95 % Wilson score interval of k successes in n trials.
func Wilson(k, n float64) (lo, hi float64) {
	if n <= 0 {
		return math.NaN(), math.NaN()
	}
	p := k / n
	z2 := wilsonZ * wilsonZ
	den := 1 + z2/n
	centre := (p + z2/(2*n)) / den
	half := wilsonZ * math.Sqrt(p*(1-p)/n+z2/(4*n*n)) / den
	return centre - half, centre + half
}

// TwoProportionZ is the pooled two-proportion z-test, two-sided, no continuity
// correction: it compares k1/n1 with the baseline k0/n0.
func TwoProportionZ(k1, n1, k0, n0 float64) (z, p float64) {
	if n1 <= 0 || n0 <= 0 {
		return math.NaN(), math.NaN()
	}
	pool := (k1 + k0) / (n1 + n0)
	se := math.Sqrt(pool * (1 - pool) * (1/n1 + 1/n0))
	if se == 0 {
		if k1/n1 == k0/n0 {
			return 0, 1
		}
		return math.NaN(), math.NaN()
	}
	z = (k1/n1 - k0/n0) / se
	p = math.Erfc(math.Abs(z) / math.Sqrt2)
	return z, p
}

// runAB compares one message-cohort rate across variants: each variant against control
// if present, else the first variant alphabetically; per group when grouped.
func (e *Engine) runAB(ctx context.Context, g *generation, r Request) (data.Frames, error) {
	q := r.Query
	m, _ := LookupMetric(q.Metric)
	dims := append(append([]string(nil), q.GroupBy...), "variant")
	spec := selectSpec{schema: g.schema, facts: e.opts.NoRollups, fact: m.Fact, groupBy: dims, filters: q.Filters,
		from: r.From, to: r.To, loc: q.Location(), aggs: []string{m.Num, m.Den}, extra: "variant IS NOT NULL"}
	s, err := e.rawAggregate(ctx, g, &spec)
	if err != nil {
		return nil, err
	}
	ng := len(q.GroupBy)
	// Group rows by the non-variant dimensions; order groups by name, variants by name.
	type arm struct {
		variant string
		k, n    float64
	}
	groups := map[string][]arm{}
	gkeys := map[string]groupKey{}
	for _, row := range s.rows {
		gk := row.key[:ng]
		groups[gk.String()] = append(groups[gk.String()], arm{row.key[ng].String, row.vals[0].Float64, row.vals[1].Float64})
		gkeys[gk.String()] = gk
	}
	order := make([]string, 0, len(groups))
	for k := range groups {
		order = append(order, k)
	}
	sort.Slice(order, func(i, j int) bool { return lessKey(gkeys[order[i]], gkeys[order[j]]) })
	if len(order) > q.TopN() {
		order = order[:q.TopN()]
	}
	dimCols := make([][]*string, ng)
	var variants, baselines []string
	var msgs, succ []float64
	var rate, lo, hi, zs, ps []*float64
	f64 := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	for _, k := range order {
		arms := groups[k]
		sort.Slice(arms, func(i, j int) bool { return arms[i].variant < arms[j].variant })
		base := arms[0]
		for _, a := range arms {
			if a.variant == "control" {
				base = a
			}
		}
		for _, a := range arms {
			for i := 0; i < ng; i++ {
				var v *string
				if gkeys[k][i].Valid {
					s := gkeys[k][i].String
					v = &s
				}
				dimCols[i] = append(dimCols[i], v)
			}
			variants = append(variants, a.variant)
			baselines = append(baselines, base.variant)
			msgs = append(msgs, a.n)
			succ = append(succ, a.k)
			if a.n > 0 {
				rate = append(rate, f64(a.k/a.n))
			} else {
				rate = append(rate, nil)
			}
			l, h := Wilson(a.k, a.n)
			lo, hi = append(lo, f64(l)), append(hi, f64(h))
			if a.variant == base.variant {
				zs, ps = append(zs, nil), append(ps, nil)
				continue
			}
			z, p := TwoProportionZ(a.k, a.n, base.k, base.n)
			zs, ps = append(zs, f64(z)), append(ps, f64(p))
		}
	}
	fields := make([]*data.Field, 0, ng+9)
	for i, d := range q.GroupBy {
		fields = append(fields, data.NewField(d, nil, dimCols[i]))
	}
	pct := &data.FieldConfig{Unit: "percentunit"}
	fields = append(fields,
		data.NewField("variant", nil, variants),
		data.NewField("baseline", nil, baselines),
		data.NewField("messages", nil, msgs),
		data.NewField("successes", nil, succ),
		data.NewField("rate", nil, rate).SetConfig(&data.FieldConfig{Unit: "percentunit", DisplayName: m.Name}),
		data.NewField("ci_low", nil, lo).SetConfig(pct),
		data.NewField("ci_high", nil, hi).SetConfig(pct),
		data.NewField("z", nil, zs),
		data.NewField("p_value", nil, ps),
	)
	f := data.NewFrame("ab", fields...)
	f.Meta = meta([]string{s.sql})
	return data.Frames{f}, nil
}

// runRetention builds the cohort table: contacts by the period of their first received
// event ever (whole store, no filters) × the share active (received, filters applied) k
// periods later. Periods in the future read null; the current period is shown.
func (e *Engine) runRetention(ctx context.Context, g *generation, r Request) (data.Frames, error) {
	q := r.Query
	z := zoneLiteral(q.Location())
	trunc := func(col string) string {
		return fmt.Sprintf("date_trunc('%s', timezone(%s, %s))", q.Period, z, col)
	}
	var args []any
	conds := filterSQL(q.Filters, FactEvent, "", q.Location(), &args)
	where := "type = 'received' AND contact_id IS NOT NULL"
	if len(conds) > 0 {
		where += " AND " + strings.Join(conds, " AND ")
	}
	text := fmt.Sprintf(`WITH act AS (
			SELECT DISTINCT contact_id, %s AS p, %s AS cohort FROM %s.f_evt
			WHERE %s AND ts >= ? AND ts < ? AND first_recv_ts >= ? AND first_recv_ts < ?
		),
		sizes AS (SELECT cohort, count(DISTINCT contact_id) AS n FROM act GROUP BY cohort)
		SELECT epoch_ms(timezone(%s, act.cohort)) AS cohort_ms, datediff('%s', act.cohort, act.p) AS k,
		       count(DISTINCT act.contact_id) AS active, any_value(sizes.n) AS size
		FROM act JOIN sizes USING (cohort)
		WHERE act.p >= act.cohort
		GROUP BY ALL ORDER BY 1, 2`,
		trunc("ts"), trunc("first_recv_ts"), g.schema, where, z, q.Period)
	args = append(args, r.From.UTC(), r.To.UTC(), r.From.UTC(), r.To.UTC())
	rows, err := g.stmts.query(ctx, text, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type cohort struct {
		start  time.Time
		size   float64
		active map[int]float64
	}
	var cohorts []*cohort
	byStart := map[int64]*cohort{}
	maxK := 0
	for rows.Next() {
		var ms, k int64
		var active, size float64
		if err := rows.Scan(&ms, &k, &active, &size); err != nil {
			return nil, err
		}
		c := byStart[ms]
		if c == nil {
			c = &cohort{start: time.UnixMilli(ms).UTC(), size: size, active: map[int]float64{}}
			byStart[ms] = c
			cohorts = append(cohorts, c)
		}
		c.active[int(k)] = active
		if int(k) > maxK {
			maxK = int(k)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Columns up to the longest possible distance within the range.
	if len(cohorts) > 0 {
		if n := periodsBetween(cohorts[0].start, r.To, q.Period, q.Location()); n > maxK {
			maxK = n
		}
	}
	starts := make([]time.Time, len(cohorts))
	sizes := make([]float64, len(cohorts))
	for i, c := range cohorts {
		starts[i], sizes[i] = c.start, c.size
	}
	fields := []*data.Field{data.NewField("cohort", nil, starts), data.NewField("cohort_size", nil, sizes)}
	pct := &data.FieldConfig{Unit: "percentunit"}
	for k := 0; k <= maxK; k++ {
		vals := make([]*float64, len(cohorts))
		for i, c := range cohorts {
			if periodStart(c.start, k, q.Period, q.Location()).Before(r.To) {
				v := c.active[k] / c.size
				vals[i] = &v
			}
		}
		fields = append(fields, data.NewField(fmt.Sprintf("+%d", k), nil, vals).SetConfig(pct))
	}
	f := data.NewFrame("retention", fields...)
	f.Meta = meta([]string{text})
	f.Meta.PreferredVisualization = data.VisTypeTable
	return data.Frames{f}, nil
}

func periodStart(start time.Time, k int, period string, loc *time.Location) time.Time {
	t := start.In(loc)
	switch period {
	case "day":
		return t.AddDate(0, 0, k)
	case "week":
		return t.AddDate(0, 0, 7*k)
	}
	return t.AddDate(0, k, 0)
}

func periodsBetween(start, end time.Time, period string, loc *time.Location) int {
	n := 0
	for periodStart(start, n+1, period, loc).Before(end) && n < 1000 {
		n++
	}
	return n
}

// derivedValues are the fixed values of derived dimensions.
func derivedValues(dim string) []string {
	switch dim {
	case "hour_of_day":
		out := make([]string, 24)
		for i := range out {
			out[i] = fmt.Sprint(i)
		}
		return out
	case "day_of_week":
		return []string{"1-Mon", "2-Tue", "3-Wed", "4-Thu", "5-Fri", "6-Sat", "7-Sun"}
	}
	return nil
}

// values lists the distinct values of a dimension (containing q.Search, case-insensitive),
// across messages, events and conversations, with the query's filters applied, at most
// limit of them.
func (e *Engine) values(ctx context.Context, g *generation, q *Query, limit int) ([]string, bool, error) {
	if limit <= 0 || limit > MaxValuesLimit {
		limit = MaxValuesLimit
	}
	if d, _ := LookupDimension(q.Dimension); d != nil && d.Derived {
		var out []string
		for _, v := range derivedValues(q.Dimension) {
			if q.Search == "" || strings.Contains(strings.ToLower(v), strings.ToLower(q.Search)) {
				out = append(out, v)
			}
		}
		return out, false, nil
	}
	var parts []string
	var args []any
	for _, fact := range []Fact{FactMessage, FactEvent, FactConversation} {
		expr := dimExpr(q.Dimension, fact, "", q.Location())
		conds := append([]string{expr + " IS NOT NULL"}, filterSQL(q.Filters, fact, "", q.Location(), &args)...)
		parts = append(parts, fmt.Sprintf("SELECT DISTINCT %s AS v FROM %s.%s WHERE %s", expr, g.schema, fact, strings.Join(conds, " AND ")))
	}
	text := "SELECT DISTINCT v FROM (" + strings.Join(parts, " UNION ALL ") + ")"
	if q.Search != "" {
		text += " WHERE contains(lower(v), lower(?))"
		args = append(args, q.Search)
	}
	text += fmt.Sprintf(" ORDER BY v LIMIT %d", limit+1)
	rows, err := g.stmts.query(ctx, text, args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, false, err
		}
		out = append(out, v)
	}
	truncated := len(out) > limit
	if truncated {
		out = out[:limit]
	}
	return out, truncated, rows.Err()
}

// Values is the editors' value lookup (resource "values").
func (e *Engine) Values(ctx context.Context, q *Query, limit int) ([]string, bool, error) {
	g, release, err := e.acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	defer release()
	return e.values(ctx, g, q, limit)
}
