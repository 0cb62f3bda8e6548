package kpi

import (
	"fmt"
	"strings"
	"time"
)

// This file is the one SQL builder: every aggregate query of every shape is a selectSpec
// rendered here. Identifiers come only from the catalog; values are bind parameters.

// selectSpec is one aggregate over one fact table.
type selectSpec struct {
	schema  string
	fact    Fact
	bucket  *Bucket // nil: one value over the whole range
	groupBy []string
	filters []Filter
	from    time.Time
	to      time.Time
	loc     *time.Location
	aggs    []string // aggregate expressions, may use {bucket}
	agent   string   // column the agent_id dimension maps to ("" = agent_id)
	extra   string   // extra WHERE condition (catalog text only)
	noTime  bool     // no time-range filter (values queries)
	facts   bool     // answer from the facts even where rollups could (rollup.go)
}

// sql renders the query from the rollups where they can answer it, else from the facts.
func (s *selectSpec) sql() (string, []any) {
	if !s.facts {
		if text, args, ok := s.renderRollup(); ok {
			return text, args
		}
	}
	return s.render()
}

// zoneLiteral quotes a validated IANA zone name.
func zoneLiteral(loc *time.Location) string {
	name := loc.String()
	if name == "Local" || name == "" {
		name = "UTC"
	}
	return "'" + strings.ReplaceAll(name, "'", "''") + "'"
}

// bucketStart is the SQL for the start of the bucket holding time column t.
func bucketStart(b Bucket, t string, loc *time.Location) string {
	if !b.Calendar() {
		w := int64(b.Width / time.Second)
		return fmt.Sprintf("to_timestamp(floor(epoch(%s) / %d) * %d)", t, w, w)
	}
	unit := "day"
	if b.Width == 7*24*time.Hour {
		unit = "week" // ISO weeks start on Monday
	}
	z := zoneLiteral(loc)
	return fmt.Sprintf("timezone(%s, date_trunc('%s', timezone(%s, %s)))", z, unit, z, t)
}

// dimExpr is the SQL of a dimension on a fact table, always VARCHAR.
func dimExpr(dim string, fact Fact, agent string, loc *time.Location) string {
	t := factTime[fact]
	switch dim {
	case "hour_of_day":
		return fmt.Sprintf("CAST(hour(timezone(%s, %s)) AS VARCHAR)", zoneLiteral(loc), t)
	case "day_of_week":
		local := fmt.Sprintf("timezone(%s, %s)", zoneLiteral(loc), t)
		return fmt.Sprintf("(CAST(isodow(%s) AS VARCHAR) || '-' || strftime(%s, '%%a'))", local, local)
	case "agent_id":
		if agent != "" {
			return agent
		}
	}
	return dim
}

// filterSQL renders the filters; values go to args. "in" never matches a missing value;
// "not_in" keeps rows where the dimension is missing. An empty list, or Grafana's "All",
// removes the filter.
func filterSQL(filters []Filter, fact Fact, agent string, loc *time.Location, args *[]any) []string {
	var conds []string
	for _, f := range filters {
		vals := effectiveValues(f.Values)
		if len(vals) == 0 {
			continue
		}
		expr := dimExpr(f.Dimension, fact, agent, loc)
		ph := make([]string, len(vals))
		for i, v := range vals {
			ph[i] = "?"
			*args = append(*args, v)
		}
		list := strings.Join(ph, ", ")
		if f.Op == "not_in" {
			conds = append(conds, fmt.Sprintf("(%s IS NULL OR %s NOT IN (%s))", expr, expr, list))
		} else {
			conds = append(conds, fmt.Sprintf("%s IN (%s)", expr, list))
		}
	}
	return conds
}

// allMarkers are what a Grafana "All" may arrive as when the frontend did not expand it.
var allMarkers = map[string]bool{"$__all": true, "__all": true}

func effectiveValues(vals []string) []string {
	for _, v := range vals {
		if allMarkers[v] {
			return nil
		}
	}
	return vals
}

// render gives the SQL and its arguments. Columns: __b (bucket start, epoch seconds; 0
// without a bucket), g0..gN (dimensions), m0..mN (aggregates).
func (s *selectSpec) render() (string, []any) {
	t := factTime[s.fact]
	var args []any
	var cols []string
	bexpr := "to_timestamp(" + fmt.Sprint(s.from.Unix()) + ")"
	if s.bucket != nil {
		bexpr = bucketStart(*s.bucket, t, s.loc)
		cols = append(cols, fmt.Sprintf("CAST(epoch(%s) AS BIGINT) AS __b", bexpr))
	} else {
		cols = append(cols, "CAST(0 AS BIGINT) AS __b")
	}
	for i, g := range s.groupBy {
		cols = append(cols, fmt.Sprintf("%s AS g%d", dimExpr(g, s.fact, s.agent, s.loc), i))
	}
	for i, a := range s.aggs {
		cols = append(cols, fmt.Sprintf("CAST((%s) AS DOUBLE) AS m%d", strings.ReplaceAll(a, "{bucket}", bexpr), i))
	}
	var where []string
	if !s.noTime {
		where = append(where, t+" >= ?", t+" < ?")
		args = append(args, s.from.UTC(), s.to.UTC())
	}
	if s.extra != "" {
		where = append(where, s.extra)
	}
	where = append(where, filterSQL(s.filters, s.fact, s.agent, s.loc, &args)...)
	q := fmt.Sprintf("SELECT %s FROM %s.%s", strings.Join(cols, ", "), s.schema, s.fact)
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " GROUP BY ALL"
	return q, args
}

// metricAggs gives the aggregate expressions of a metric: one for a plain metric, two
// (numerator, denominator) for a ratio.
func metricAggs(m *Metric) []string {
	if m.Ratio() {
		return []string{m.Num, m.Den}
	}
	return []string{m.Expr}
}
