package kpi

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// runQuality answers quality_rating: the state at the end of each bucket (or of the range,
// for a table), carried forward from the last change. Number ratings come from rows
// without a template; grouping by template reads template ratings instead.
func (e *Engine) runQuality(ctx context.Context, g *generation, r Request, m *Metric) (*series, []time.Time, error) {
	q := r.Query
	byTemplate := contains(q.GroupBy, "template")
	for _, f := range q.Filters {
		if f.Dimension == "template" && len(effectiveValues(f.Values)) > 0 && f.Op == "in" {
			byTemplate = true
		}
	}
	var args []any
	where := []string{"ts < ?"}
	args = append(args, r.To.UTC())
	if byTemplate {
		where = append(where, "template IS NOT NULL")
	} else {
		where = append(where, "template IS NULL")
	}
	where = append(where, filterSQL(q.Filters, FactQuality, "", q.Location(), &args)...)
	cols := make([]string, len(q.GroupBy))
	for i, d := range q.GroupBy {
		cols[i] = d
	}
	sel := "epoch_ms(ts), state"
	if len(cols) > 0 {
		sel += ", " + strings.Join(cols, ", ")
	}
	text := fmt.Sprintf("SELECT %s FROM %s.f_quality WHERE %s ORDER BY ts, arr", sel, g.schema, strings.Join(where, " AND "))
	rows, err := g.stmts.query(ctx, text, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	type change struct {
		at    time.Time
		state float64
	}
	changes := map[string][]change{}
	keys := map[string]groupKey{}
	for rows.Next() {
		var ms int64
		var state sql.NullFloat64
		key := make(groupKey, len(cols))
		dest := []any{&ms, &state}
		for i := range key {
			dest = append(dest, &key[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		if !state.Valid {
			continue
		}
		k := key.String()
		keys[k] = key
		changes[k] = append(changes[k], change{time.UnixMilli(ms).UTC(), state.Float64})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	s := &series{metrics: []*Metric{m}, groups: map[string]*groupData{}, sql: []string{text}}
	var grid []time.Time
	var ends []time.Time
	var bucketIDs []int64
	if q.QueryType == TypeTable {
		ends, bucketIDs = []time.Time{r.To}, []int64{0}
	} else {
		b, err := ChooseBucket(q, r.From, r.To, r.Interval, r.MaxDataPoints)
		if err != nil {
			return nil, nil, err
		}
		grid = BucketGrid(b, r.From, r.To, q.Location())
		for i, t := range grid {
			end := r.To
			if i+1 < len(grid) {
				end = grid[i+1]
			} else if !b.Calendar() {
				end = t.Add(b.Width)
			} else {
				end = t.AddDate(0, 0, int(b.Width/(24*time.Hour)))
			}
			ends = append(ends, end)
			bucketIDs = append(bucketIDs, t.Unix())
		}
	}
	for k, ch := range changes {
		gd := &groupData{key: keys[k], buckets: map[int64][]*float64{}}
		j := -1
		for i, end := range ends {
			for j+1 < len(ch) && ch[j+1].at.Before(end) {
				j++
			}
			if j >= 0 {
				v := ch[j].state
				gd.buckets[bucketIDs[i]] = []*float64{&v}
			}
		}
		s.groups[k] = gd
	}
	if len(q.GroupBy) == 0 && len(s.groups) > 1 {
		// Not grouped: the worst rating across numbers.
		merged := &groupData{key: groupKey{}, buckets: map[int64][]*float64{}}
		for _, gd := range s.groups {
			for b, v := range gd.buckets {
				if cur := merged.buckets[b]; cur == nil || *v[0] > *cur[0] {
					merged.buckets[b] = v
				}
			}
		}
		s.groups = map[string]*groupData{"": merged}
	}
	whole := map[string]*float64{}
	if len(bucketIDs) > 0 {
		last := bucketIDs[len(bucketIDs)-1]
		for k, gd := range s.groups {
			if v := gd.buckets[last]; len(v) > 0 {
				whole[k] = v[0]
			}
		}
	}
	if len(q.GroupBy) == 0 && len(s.groups) == 0 {
		s.groups[""] = &groupData{key: groupKey{}, buckets: map[int64][]*float64{}}
	}
	rank(s, whole, q.TopN())
	return s, grid, nil
}
