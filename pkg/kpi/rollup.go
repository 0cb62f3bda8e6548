package kpi

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Rollups make a query's cost follow the number of points it returns, not the number of
// events stored. Each fact table gets hourly pre-aggregates, keyed by the UTC hour and
// its dimensions, of every additive part ("atom") of the catalog's aggregates:
//
//	r_<fact>_all    hour x every dimension column of the fact
//	r_<fact>_<dim>  hour x one dimension (one per dimension column)
//	r_<fact>_none   hour only
//	r_<fact>_fine   5 minutes, no dimension (buckets under an hour)
//
// A query is answered from the smallest rollup whose keys cover its group-by and filter
// dimensions, for the whole hours inside its range, plus the fact rows of the partial
// hours at either end, aggregated the same way. The combination is exact for counts and
// sums (the catalog sums exact decimals, never floats). Metrics with a non-additive part
// (distinct counts, percentiles, float sums and averages) and
// buckets or zones that cut hours (sub-hour buckets, zones with a :30 or :45 offset) are
// answered from the facts. rollup_test.go checks both paths agree on random stores.

// atomKind says how partial aggregates combine.
type atomKind int

const (
	atomCount atomKind = iota // count(...) [FILTER]: partials add up
	atomSum                   // sum(x) [FILTER] of integers or decimals: partials add up exactly
)

// combine is the SQL that merges partial column col. Counts stay BIGINT, as count() is:
// DuckDB's sum of BIGINTs is a HUGEINT, which DuckDB stores and scans several times more
// slowly (reading one HUGEINT column of an hourly rollup cost ~0.7 ms of a 2 ms query).
func (k atomKind) combine(col string) string {
	if k == atomCount {
		return "CAST(sum(" + col + ") AS BIGINT)"
	}
	return "sum(" + col + ")"
}

// rollupPlan is one fact's rollup layout.
type rollupPlan struct {
	fact  Fact
	keys  []string // dimension columns (the "all" level)
	atoms []string // partial aggregate SQL; column c<i>
	kinds []atomKind
	index map[string]int
}

// rollupPlans holds the plan of every fact that has rollups.
var rollupPlans = map[Fact]*rollupPlan{}

// funnelAggs are the funnel's stage counts (runFunnel): messages that reached at least
// each stage. Rolled up like metrics.
func funnelAggs() []string {
	const lvl = "CASE WHEN n_conv > 0 THEN 4 WHEN is_clicked OR is_replied THEN 3 WHEN is_read THEN 2 WHEN is_delivered THEN 1 ELSE 0 END"
	out := make([]string, len(funnelStages))
	for i := range funnelStages {
		out[i] = fmt.Sprintf("count(*) FILTER (WHERE (%s) >= %d)", lvl, i)
	}
	return out
}

func init() {
	for _, f := range []Fact{FactMessage, FactEvent, FactConversation, FactTurn} {
		p := &rollupPlan{fact: f, index: map[string]int{}}
		for _, d := range Dimensions {
			if !d.Derived {
				p.keys = append(p.keys, d.ID)
			}
		}
		for _, k := range p.keys {
			if k == "all" || k == "none" || k == "fine" {
				panic("kpi: dimension " + k + " has the name of a rollup level")
			}
		}
		rollupPlans[f] = p
	}
	// Learn each aggregate's atoms; one that cannot roll up leaves its metric on the facts.
	add := func(f Fact, expr string) {
		if p := rollupPlans[f]; p != nil && expr != "" {
			p.rewrite(expr, true)
		}
	}
	for i := range Metrics {
		m := &Metrics[i]
		if p := rollupPlans[m.Fact]; p != nil && m.AgentColumn != "" && !contains(p.keys, m.AgentColumn) {
			p.keys = append(p.keys, m.AgentColumn)
		}
		for _, e := range []string{m.Expr, m.Num, m.Den} {
			add(m.Fact, e)
		}
	}
	for _, e := range funnelAggs() {
		add(FactMessage, e)
	}
}

// atomAt parses the aggregate call starting at s[i] (with an optional FILTER clause), if
// it is one; end is the index after it. ok is false for a call rollups cannot combine.
func atomAt(s string, i int) (call, filter string, fn string, end int, isCall, ok bool) {
	for _, f := range []string{"count(", "fsum(", "sum(", "avg(", "quantile_cont(", "median(", "min(", "max(", "arg_min(", "arg_max(", "bool_or(", "list(", "string_agg("} {
		if !strings.HasPrefix(s[i:], f) {
			continue
		}
		if i > 0 && isIdent(s[i-1]) {
			return "", "", "", i, false, false // part of a longer name (e.g. "fsum(" inside "xfsum(")
		}
		close := matchParen(s, i+len(f)-1)
		if close < 0 {
			return "", "", "", i, true, false
		}
		fn = f[:len(f)-1]
		call = s[i : close+1]
		end = close + 1
		rest := strings.TrimLeft(s[end:], " ")
		if strings.HasPrefix(rest, "FILTER") {
			open := strings.Index(rest, "(")
			fc := matchParen(rest, open)
			if open < 0 || fc < 0 {
				return "", "", "", i, true, false
			}
			skip := len(s[end:]) - len(rest)
			filter = rest[:fc+1]
			end += skip + fc + 1
		}
		inner := strings.TrimSpace(call[len(f) : len(call)-1])
		switch {
		case fn == "count" && strings.HasPrefix(strings.ToUpper(inner), "DISTINCT"):
			return call, filter, fn, end, true, false
		case fn == "count" || fn == "sum":
			return call, filter, fn, end, true, true
		}
		return call, filter, fn, end, true, false
	}
	return "", "", "", i, false, false
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// matchParen finds the parenthesis closing the one at s[open], skipping quoted text.
func matchParen(s string, open int) int {
	if open < 0 || open >= len(s) || s[open] != '(' {
		return -1
	}
	depth := 0
	inQuote := false
	for j := open; j < len(s); j++ {
		switch c := s[j]; {
		case inQuote:
			if c == '\'' {
				inQuote = false
			}
		case c == '\'':
			inQuote = true
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// rewrite turns an aggregate expression over the fact into one over the rollup's partial
// columns. With learn, unknown atoms are added to the plan; without, an atom the plan
// lacks makes ok false.
func (p *rollupPlan) rewrite(expr string, learn bool) (string, bool) {
	var b strings.Builder
	column := func(atom string, kind atomKind) (string, bool) {
		i, found := p.index[atom]
		if !found {
			if !learn {
				return "", false
			}
			i = len(p.atoms)
			p.atoms = append(p.atoms, atom)
			p.kinds = append(p.kinds, kind)
			p.index[atom] = i
		}
		return fmt.Sprintf("c%d", i), true
	}
	inQuote := false
	for i := 0; i < len(expr); {
		c := expr[i]
		if inQuote || c == '\'' {
			if c == '\'' {
				inQuote = !inQuote
			}
			b.WriteByte(c)
			i++
			continue
		}
		call, filter, fn, end, isCall, ok := atomAt(expr, i)
		if !isCall {
			b.WriteByte(c)
			i++
			continue
		}
		if !ok {
			return "", false
		}
		suffix := ""
		if filter != "" {
			suffix = " " + filter
		}
		switch fn {
		case "count":
			col, ok := column(call+suffix, atomCount)
			if !ok {
				return "", false
			}
			b.WriteString(atomCount.combine(col))
		case "sum":
			col, ok := column(call+suffix, atomSum)
			if !ok {
				return "", false
			}
			b.WriteString(atomSum.combine(col))
		}
		i = end
	}
	return b.String(), true
}

// rollupTable names a level's table.
func rollupTable(f Fact, level string) string {
	return "r_" + strings.TrimPrefix(string(f), "f_") + "_" + level
}

// rollupFacts are the facts that have rollups.
var rollupFacts = []Fact{FactMessage, FactEvent, FactConversation, FactTurn}

// dimsTable is the table of a fact's other levels: per period (the hour; 5 minutes for
// "fine"), level (a dimension, "none" or "fine") and key (the dimension's value, NULL for
// the two without one), the level's aggregates. One table, not one per level: an
// increment appends to every level's table, and DuckDB's COMMIT costs ~0.3 ms for each
// column appended to (~60 tables of 15-25 columns: 0.3-0.6 s at 100M events), with a
// 256 KB block in memory per column (and one for its validity) until the next
// checkpoint: ~150 MB at 100M events with 26 tables, of which the "none" and "fine"
// tables' share of the columns is ~35 MB. Sorted by level, then time, so a level's rows
// are row groups of their own.
func dimsTable(f Fact) string { return rollupTable(f, "dims") }

// dimsSelect aggregates the levels of dimsTable for fact f: each dimension and "none"
// from all, rows of its "all" level; "fine" from facts, rows of the fact (where, if not
// "", restricts them).
func dimsSelect(f Fact, all, facts, where string) string {
	p := rollupPlans[f]
	t := factTime[f]
	combined := p.combinedColumns()
	sel := make([]string, 0, len(p.keys)+2)
	for _, k := range p.keys {
		sel = append(sel, fmt.Sprintf("SELECT %s, '%s' AS level, %s AS key, %s FROM %s GROUP BY %s, %s", t, k, k, combined, all, t, k))
	}
	sel = append(sel, fmt.Sprintf("SELECT %s, 'none', NULL, %s FROM %s GROUP BY %s", t, combined, all, t))
	atoms, cond := p.factAtoms(where)
	sel = append(sel, fmt.Sprintf("SELECT %s, 'fine', NULL, %s FROM %s WHERE %s GROUP BY 1",
		grainStart(t, fineGrain), atoms, facts, cond))
	return strings.Join(sel, "\n\tUNION ALL ")
}

// factAtoms is the select list of the plan's atoms over fact rows (c0, c1, ...), and the
// condition on those rows: a time, and where unless "".
func (p *rollupPlan) factAtoms(where string) (atoms, cond string) {
	parts := make([]string, len(p.atoms))
	for i, a := range p.atoms {
		parts[i] = fmt.Sprintf("%s AS c%d", a, i)
	}
	cond = factTime[p.fact] + " IS NOT NULL"
	if where != "" {
		cond += " AND (" + where + ")"
	}
	return strings.Join(parts, ", "), cond
}

// levelRelation is the relation a query reads rollup level level of fact f from, in
// schema: the "all" table, or the level's rows of dimsTable, with a dimension's key named
// as its dimension.
func levelRelation(f Fact, schema, level string) string {
	if level == "all" {
		return schema + "." + rollupTable(f, level)
	}
	key := ", key AS " + level
	if level == "none" || level == "fine" {
		key = ""
	}
	return fmt.Sprintf("(SELECT * EXCLUDE (level, key)%s FROM %s.%s WHERE level = '%s')", key, schema, dimsTable(f), level)
}

// fineGrain is the "fine" level's grain: no dimensions, for buckets under an hour (the
// bucket ladder's 5, 10, 15 and 30 minutes).
const fineGrain = 5 * time.Minute

// grainStart is the SQL of the start of the grain period holding time column t.
func grainStart(t string, grain time.Duration) string {
	if grain == time.Hour {
		return fmt.Sprintf("date_trunc('hour', %s)", t)
	}
	w := int64(grain / time.Second)
	return fmt.Sprintf("to_timestamp(floor(epoch(%s) / %d) * %d)", t, w, w)
}

// allSelect aggregates fact f's "all" level, the one every other level derives from (the
// others are rows of dimsTable), from rel, a relation with the fact's columns; where (""
// for everything) restricts its rows. Each row ends with its hash (rh), as fact rows do:
// an increment compares its recomputed rows with the stored ones by it, reading two
// columns of the stored rows instead of all of them.
func allSelect(f Fact, rel, where string) string {
	p := rollupPlans[f]
	t := factTime[f]
	atoms, cond := p.factAtoms(where)
	return fmt.Sprintf("SELECT a.*, hash(a) AS rh FROM (SELECT date_trunc('hour', %s) AS %s, %s, %s FROM %s WHERE %s GROUP BY ALL) AS a",
		t, t, strings.Join(p.keys, ", "), atoms, rel, cond)
}

// combinedColumns are the plan's atom columns c0, c1, ... combined over rows of its "all"
// level (the select list of every other level).
func (p *rollupPlan) combinedColumns() string {
	parts := make([]string, len(p.kinds))
	for i, k := range p.kinds {
		parts[i] = fmt.Sprintf("%s AS c%d", k.combine(fmt.Sprintf("c%d", i)), i)
	}
	return strings.Join(parts, ", ")
}

// rollupStatements build every fact's rollups, after the facts (factStatements), in time
// order so time filters skip row groups.
func rollupStatements() []string {
	var out []string
	for _, f := range rollupFacts {
		out = append(out, fmt.Sprintf("CREATE TABLE {g}.%s AS %s ORDER BY 1", rollupTable(f, "all"), allSelect(f, "{g}."+string(f), "")),
			fmt.Sprintf("CREATE TABLE {g}.%s AS %s ORDER BY level, %s", dimsTable(f),
				dimsSelect(f, "{g}."+rollupTable(f, "all"), "{g}."+string(f), ""), factTime[f]))
	}
	return out
}

// wholeHourZone reports whether loc's offset from UTC is a whole number of hours
// throughout [from, to], so local calendar days and hours start on UTC hours.
func wholeHourZone(loc *time.Location, from, to time.Time) bool {
	if loc == nil || loc == time.UTC {
		return true
	}
	// Offsets change at most a few times a year; look at every hour boundary of the
	// range, but never more than a bounded number of points.
	step := time.Hour
	if n := to.Sub(from) / step; n > 200_000 {
		step = to.Sub(from) / 200_000
	}
	for t := from.Truncate(time.Hour); !t.After(to); t = t.Add(step) {
		if _, off := t.In(loc).Zone(); off%3600 != 0 {
			return false
		}
	}
	_, off := to.In(loc).Zone()
	return off%3600 == 0
}

// rollupQuery is a query the rollups can answer. parts returns the partial aggregates of
// its whole periods (from a rollup level) and of the partial periods at either end (from
// the facts): one row per period and key, with the period's start, the keys of need, then
// the atom columns cols. combined is each aggregate over those columns.
type rollupQuery struct {
	parts    string
	args     []any
	need     []string
	cols     []string
	combined []string
}

// renderRollup renders s from the rollups when it can: the SQL has the same columns as
// render's. ok is false when the facts must answer.
func (s *selectSpec) renderRollup() (string, []any, bool) {
	rq, ok := s.planRollup()
	if !ok {
		return "", nil, false
	}
	t := factTime[s.fact]
	var out []string
	if s.bucket != nil {
		out = append(out, fmt.Sprintf("CAST(epoch(%s) AS BIGINT) AS __b", bucketStart(*s.bucket, t, s.loc)))
	} else {
		out = append(out, "CAST(0 AS BIGINT) AS __b")
	}
	for i, g := range s.groupBy {
		out = append(out, fmt.Sprintf("%s AS g%d", dimExpr(g, s.fact, s.agent, s.loc), i))
	}
	for i, c := range rq.combined {
		out = append(out, fmt.Sprintf("CAST((%s) AS DOUBLE) AS m%d", c, i))
	}
	return fmt.Sprintf("SELECT %s FROM (\n\t%s\n) AS p GROUP BY ALL", strings.Join(out, ", "), rq.parts), rq.args, true
}

// countColumn matches a combined aggregate that is one rolled-up count.
var countColumn = regexp.MustCompile(`^CAST\(sum\((c[0-9]+)\) AS BIGINT\)$`)

// countPositions gives, for each aggregate of rq, the position in cols of the one count
// it sums; ok is false unless every aggregate is such a count.
func (rq *rollupQuery) countPositions() ([]int, bool) {
	pos := make([]int, len(rq.combined))
	for i, c := range rq.combined {
		m := countColumn.FindStringSubmatch(c)
		if m == nil {
			return nil, false
		}
		pos[i] = slices.Index(rq.cols, m[1])
		if pos[i] < 0 {
			return nil, false
		}
	}
	return pos, true
}

// planRollup plans s on the rollups; ok is false when the facts must answer.
func (s *selectSpec) planRollup() (*rollupQuery, bool) {
	p := rollupPlans[s.fact]
	if p == nil || s.extra != "" || s.noTime || len(s.aggs) == 0 {
		return nil, false
	}
	grain := time.Hour
	if s.bucket != nil && !s.bucket.Calendar() && s.bucket.Width%time.Hour != 0 {
		if s.bucket.Width%fineGrain != 0 {
			return nil, false
		}
		grain = fineGrain // sub-hour buckets: the fine level, when no dimension is needed
	}
	lo := s.from.UTC().Truncate(grain)
	if lo.Before(s.from) {
		lo = lo.Add(grain)
	}
	hi := s.to.UTC().Truncate(grain)
	if !hi.After(lo) {
		return nil, false // no whole period: the facts are as cheap
	}
	// Which key columns the query needs, and whether it looks at local time.
	local := s.bucket != nil && s.bucket.Calendar()
	var need []string
	use := func(dim string) bool {
		if d, ok := LookupDimension(dim); ok && d.Derived {
			local = true
			return true
		}
		col := dimExpr(dim, s.fact, s.agent, s.loc)
		if !contains(p.keys, col) {
			return false
		}
		if !contains(need, col) {
			need = append(need, col)
		}
		return true
	}
	for _, d := range s.groupBy {
		if !use(d) {
			return nil, false
		}
	}
	for _, f := range s.filters {
		if len(effectiveValues(f.Values)) > 0 && !use(f.Dimension) {
			return nil, false
		}
	}
	if local && !wholeHourZone(s.loc, s.from, s.to) {
		return nil, false
	}
	combined := make([]string, len(s.aggs))
	for i, a := range s.aggs {
		c, ok := p.rewrite(a, false)
		if !ok || strings.Contains(a, "{bucket}") {
			return nil, false
		}
		combined[i] = c
	}
	level := "all"
	switch len(need) {
	case 0:
		level = "none"
	case 1:
		level = need[0]
	}
	if grain == fineGrain {
		if len(need) > 0 || local {
			return nil, false
		}
		level = "fine"
	}

	t := factTime[s.fact]
	var args []any
	keyCols := t
	for _, c := range need {
		keyCols += ", " + c
	}
	// Partials: the rollup's whole periods, and the fact rows of the partial ones.
	var cols, atoms []string
	for i, a := range p.atoms {
		c := fmt.Sprintf("c%d", i)
		for _, e := range combined {
			if strings.Contains(e, "("+c+")") {
				cols = append(cols, c)
				atoms = append(atoms, a+" AS "+c)
				break
			}
		}
	}
	whole := []string{t + " >= ?", t + " < ?"}
	args = append(args, lo, hi)
	whole = append(whole, filterSQL(s.filters, s.fact, s.agent, s.loc, &args)...)
	edgeKeys := fmt.Sprintf("%s AS %s", grainStart(t, grain), t)
	for _, c := range need {
		edgeKeys += ", " + c
	}
	// The partial hours at each end, as two plain ranges so the scans skip row groups.
	edge := func(a, b time.Time) string {
		conds := []string{t + " >= ?", t + " < ?"}
		args = append(args, a, b)
		conds = append(conds, filterSQL(s.filters, s.fact, s.agent, s.loc, &args)...)
		return fmt.Sprintf("SELECT %s, %s FROM %s.%s WHERE %s GROUP BY ALL",
			edgeKeys, strings.Join(atoms, ", "), s.schema, s.fact, strings.Join(conds, " AND "))
	}
	parts := fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s\n\tUNION ALL\n\t%s\n\tUNION ALL\n\t%s",
		keyCols, strings.Join(cols, ", "), levelRelation(s.fact, s.schema, level), strings.Join(whole, " AND "),
		edge(s.from.UTC(), lo), edge(hi, s.to.UTC()))
	return &rollupQuery{parts: parts, args: args, need: need, cols: cols, combined: combined}, true
}
