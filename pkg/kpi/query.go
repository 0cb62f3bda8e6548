package kpi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones without the host's zoneinfo (static binary, empty root)
)

// Query types (SPEC section 3).
const (
	TypeTimeSeries = "timeseries"
	TypeTable      = "table"
	TypeFunnel     = "funnel"
	TypeRetention  = "retention"
	TypeAB         = "ab"
	TypeSQL        = "sql"
	TypeValues     = "values"
)

// QueryTypes lists the shapes with a one-line description, for errors and the editors.
var QueryTypes = []struct{ ID, Name, Description string }{
	{TypeTimeSeries, "Time series", "metrics per bucket, one series per group"},
	{TypeTable, "Table", "metrics over the whole range, one row per group"},
	{TypeFunnel, "Funnel", "sent → delivered → read → engaged → converted"},
	{TypeRetention, "Retention", "contacts by period of first activity × share active k periods later"},
	{TypeAB, "A/B comparison", "a rate per variant with a 95 % Wilson interval and p-value"},
	{TypeSQL, "Raw SQL", "a read-only SELECT over the view events, with macros"},
	{TypeValues, "Dimension values", "distinct values of one dimension, for template variables"},
}

func queryTypeIDs() []string {
	ids := make([]string, len(QueryTypes))
	for i, q := range QueryTypes {
		ids[i] = q.ID
	}
	return ids
}

// ErrBadQuery marks errors in the user's query (a downstream error, HTTP 400).
var ErrBadQuery = errors.New("bad query")

// BadQuery formats an error about the user's query.
func BadQuery(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadQuery, fmt.Sprintf(format, args...))
}

// Filter restricts a dimension to (op "in") or away from (op "not_in") a set of values.
type Filter struct {
	Dimension string      `json:"dimension"`
	Op        string      `json:"op"`
	Values    StringArray `json:"values"`
}

// StringArray accepts strings and numbers (error codes) in JSON.
type StringArray []string

// UnmarshalJSON accepts a list of strings or numbers, or a single string.
func (s *StringArray) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = StringArray{one}
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("values must be a list of strings")
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		var str string
		if err := json.Unmarshal(r, &str); err == nil {
			out = append(out, str)
			continue
		}
		var num json.Number
		if err := json.Unmarshal(r, &num); err == nil {
			out = append(out, num.String())
			continue
		}
		return fmt.Errorf("values must be strings or numbers, got %s", string(r))
	}
	*s = out
	return nil
}

// Query is the query model of SPEC section 3 (Grafana DataQuery.JSON).
type Query struct {
	QueryType string   `json:"queryType"`
	Metrics   []string `json:"metrics,omitempty"`
	Metric    string   `json:"metric,omitempty"`
	GroupBy   []string `json:"groupBy,omitempty"`
	Filters   []Filter `json:"filters,omitempty"`
	Bucket    string   `json:"bucket,omitempty"`
	Limit     *int     `json:"limit,omitempty"`
	Timezone  string   `json:"timezone,omitempty"`
	Period    string   `json:"period,omitempty"`
	Dimension string   `json:"dimension,omitempty"`
	RawSQL    string   `json:"rawSql,omitempty"`
	Search    string   `json:"search,omitempty"` // values: substring, case-insensitive

	loc *time.Location
}

// Limits of the query model.
const (
	DefaultLimit    = 20
	MaxLimit        = 500
	maxListLen      = 1000 // metrics, groupBy, filters and filter values
	MaxValuesLimit  = 1000
	maxRawSQLLength = 100_000
	// maxFilterValues bounds the bind parameters of one query (all filters together).
	maxFilterValues = 10_000
	// MaxValueLength bounds one filter value and the values search text, in bytes.
	MaxValueLength = 4096
)

// Location is the query's time zone (UTC by default).
func (q *Query) Location() *time.Location {
	if q.loc == nil {
		return time.UTC
	}
	return q.loc
}

// TopN is the effective group limit.
func (q *Query) TopN() int {
	if q.Limit == nil {
		return DefaultLimit
	}
	return *q.Limit
}

// knownFields are the JSON fields a query may carry: ours plus Grafana's own.
var knownFields = map[string]bool{
	"queryType": true, "metrics": true, "metric": true, "groupBy": true, "filters": true,
	"bucket": true, "limit": true, "timezone": true, "period": true, "dimension": true,
	"rawSql": true, "search": true,
	// Grafana's DataQuery fields and common panel/alerting extras.
	"refId": true, "datasource": true, "datasourceId": true, "hide": true, "key": true,
	"intervalMs": true, "maxDataPoints": true, "queryMode": true, "editorMode": true,
	"format": true, "interval": true, "legendFormat": true, "instant": true, "range": true,
	"exemplar": true, "expr": true,
}

var zoneRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$`)

// ParseQuery decodes and validates a query. Every error names the problem and what is
// allowed, and wraps ErrBadQuery.
func ParseQuery(raw []byte) (*Query, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, BadQuery("empty query: send a JSON object with a queryType (one of %s)", strings.Join(queryTypeIDs(), ", "))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, BadQuery("query is not a JSON object: %v", err)
	}
	var unknown []string
	for k := range fields {
		if !knownFields[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, BadQuery("unknown field %s (allowed: queryType, metrics, metric, groupBy, filters, bucket, limit, timezone, period, dimension, rawSql)", strings.Join(unknown, ", "))
	}
	var q Query
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&q); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, BadQuery("field %s has the wrong type: got a JSON %s, want %s", te.Field, te.Value, jsonTypeName(te.Type.String()))
		}
		return nil, BadQuery("malformed query: %v", err)
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	return &q, nil
}

func jsonTypeName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case goType == "string":
		return "a string"
	case strings.Contains(goType, "int"):
		return "a whole number"
	}
	return goType
}

// Validate checks the query against the catalog.
func (q *Query) Validate() error {
	if q.QueryType == "" {
		q.QueryType = TypeTimeSeries
	}
	if !contains(queryTypeIDs(), q.QueryType) {
		return BadQuery("unknown queryType %q (allowed: %s)", q.QueryType, strings.Join(queryTypeIDs(), ", "))
	}
	if len(q.Metrics) > maxListLen || len(q.GroupBy) > maxListLen || len(q.Filters) > maxListLen {
		return BadQuery("too many metrics, groupBy or filters (at most %d each)", maxListLen)
	}
	if q.Timezone != "" {
		if !zoneRe.MatchString(q.Timezone) || len(q.Timezone) > 64 {
			return BadQuery("timezone %q is not an IANA time zone name (for example UTC, Europe/Rome, America/New_York)", q.Timezone)
		}
		loc, err := time.LoadLocation(q.Timezone)
		if err != nil {
			return BadQuery("timezone %q is not an IANA time zone name (for example UTC, Europe/Rome, America/New_York)", q.Timezone)
		}
		q.loc = loc
	}
	if q.Limit != nil && (*q.Limit < 1 || *q.Limit > MaxLimit) {
		return BadQuery("limit %d is out of range (1 to %d; default %d)", *q.Limit, MaxLimit, DefaultLimit)
	}
	if q.Bucket != "" {
		if _, err := ParseBucket(q.Bucket); err != nil {
			return err
		}
	}
	for _, g := range q.GroupBy {
		if _, ok := LookupDimension(g); !ok {
			return BadQuery("unknown groupBy dimension %q (allowed: %s)", g, strings.Join(DimensionIDs(), ", "))
		}
	}
	if dup := firstDuplicate(q.GroupBy); dup != "" {
		return BadQuery("groupBy lists %q twice", dup)
	}
	total := 0
	for i, f := range q.Filters {
		if _, ok := LookupDimension(f.Dimension); !ok {
			return BadQuery("filter %d: unknown dimension %q (allowed: %s)", i+1, f.Dimension, strings.Join(DimensionIDs(), ", "))
		}
		if f.Op == "" {
			q.Filters[i].Op = "in"
		} else if f.Op != "in" && f.Op != "not_in" {
			return BadQuery("filter %d: unknown op %q (allowed: in, not_in)", i+1, f.Op)
		}
		if len(f.Values) > maxListLen {
			return BadQuery("filter %d: too many values (at most %d)", i+1, maxListLen)
		}
		total += len(f.Values)
		for _, v := range f.Values {
			if len(v) > MaxValueLength {
				return BadQuery("filter %d: a value is too long (%d bytes, at most %d)", i+1, len(v), MaxValueLength)
			}
		}
	}
	if total > maxFilterValues {
		return BadQuery("too many filter values in all (%d, at most %d)", total, maxFilterValues)
	}
	if len(q.Search) > MaxValueLength {
		return BadQuery("search is too long (%d bytes, at most %d)", len(q.Search), MaxValueLength)
	}
	switch q.QueryType {
	case TypeTimeSeries, TypeTable:
		if len(q.Metrics) == 0 {
			return BadQuery("%s query needs at least one metric in metrics (allowed: %s)", q.QueryType, strings.Join(MetricIDs(), ", "))
		}
		if dup := firstDuplicate(q.Metrics); dup != "" {
			return BadQuery("metrics lists %q twice", dup)
		}
		for _, id := range q.Metrics {
			m, ok := LookupMetric(id)
			if !ok {
				return BadQuery("unknown metric %q (allowed: %s)", id, strings.Join(MetricIDs(), ", "))
			}
			if m.Fact == FactQuality {
				if len(q.Metrics) > 1 {
					return BadQuery("quality_rating is a state: query it on its own, not with %s", strings.Join(without(q.Metrics, id), ", "))
				}
				for _, g := range q.GroupBy {
					if g != "business_number" && g != "template" {
						return BadQuery("quality_rating can be grouped by business_number or template, not %q", g)
					}
				}
				for _, f := range q.Filters {
					if f.Dimension != "business_number" && f.Dimension != "template" {
						return BadQuery("quality_rating can be filtered by business_number or template, not %q", f.Dimension)
					}
				}
			}
		}
	case TypeAB:
		if q.Metric == "" && len(q.Metrics) == 1 {
			q.Metric = q.Metrics[0]
		}
		m, ok := LookupMetric(q.Metric)
		if !ok {
			return BadQuery("ab query needs one rate in metric (allowed: %s)", strings.Join(abMetricIDs(), ", "))
		}
		if !contains(m.Shapes(), TypeAB) {
			return BadQuery("metric %q cannot be compared by variant (allowed in ab: %s)", q.Metric, strings.Join(abMetricIDs(), ", "))
		}
		if contains(q.GroupBy, "variant") {
			q.GroupBy = without(q.GroupBy, "variant")
		}
	case TypeFunnel:
		if len(q.Metrics) > 0 {
			return BadQuery("funnel query takes no metrics: its stages are sent, delivered, read, engaged, converted")
		}
	case TypeRetention:
		if q.Period == "" {
			q.Period = "week"
		}
		if q.Period != "day" && q.Period != "week" && q.Period != "month" {
			return BadQuery("unknown period %q (allowed: day, week, month)", q.Period)
		}
		if len(q.GroupBy) > 0 {
			return BadQuery("retention query takes no groupBy; filter instead")
		}
	case TypeValues:
		if _, ok := LookupDimension(q.Dimension); !ok {
			return BadQuery("values query needs a dimension (allowed: %s)", strings.Join(DimensionIDs(), ", "))
		}
	case TypeSQL:
		if strings.TrimSpace(q.RawSQL) == "" {
			return BadQuery("sql query needs rawSql: a SELECT over the view events")
		}
		if len(q.RawSQL) > maxRawSQLLength {
			return BadQuery("rawSql is too long (at most %d characters)", maxRawSQLLength)
		}
	}
	return nil
}

func abMetricIDs() []string {
	var ids []string
	for i := range Metrics {
		if contains(Metrics[i].Shapes(), TypeAB) {
			ids = append(ids, Metrics[i].ID)
		}
	}
	return ids
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func without(list []string, s string) []string {
	out := make([]string, 0, len(list))
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

func firstDuplicate(list []string) string {
	seen := map[string]bool{}
	for _, v := range list {
		if seen[v] {
			return v
		}
		seen[v] = true
	}
	return ""
}

// Bucket is a bucket width: under a day it aligns to UTC; a day or a week starts at local
// midnight (weeks on Monday).
type Bucket struct {
	Width time.Duration
}

// Calendar reports whether the bucket is a local calendar day or week.
func (b Bucket) Calendar() bool { return b.Width >= 24*time.Hour }

func (b Bucket) String() string {
	switch {
	case b.Width == 7*24*time.Hour:
		return "1w"
	case b.Width == 24*time.Hour:
		return "1d"
	case b.Width%time.Hour == 0:
		return strconv.Itoa(int(b.Width/time.Hour)) + "h"
	}
	return strconv.Itoa(int(b.Width/time.Minute)) + "m"
}

// bucketLadder is what automatic buckets choose from.
var bucketLadder = []time.Duration{
	time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour,
}

var bucketRe = regexp.MustCompile(`^([0-9]{1,4})(m|h|d|w)$`)

// ParseBucket reads "1m" … "1d", "1w". Sub-day widths must divide a day.
func ParseBucket(s string) (Bucket, error) {
	m := bucketRe.FindStringSubmatch(strings.TrimSpace(s))
	bad := BadQuery("bucket %q is not allowed (use 1m, 5m, 10m, 15m, 30m, 1h, 3h, 6h, 12h, 1d or 1w; sub-day widths must divide a day)", s)
	if m == nil {
		return Bucket{}, bad
	}
	n, _ := strconv.Atoi(m[1])
	if n <= 0 {
		return Bucket{}, bad
	}
	var d time.Duration
	switch m[2] {
	case "m":
		d = time.Duration(n) * time.Minute
	case "h":
		d = time.Duration(n) * time.Hour
	case "d":
		if n != 1 {
			return Bucket{}, bad
		}
		d = 24 * time.Hour
	case "w":
		if n != 1 {
			return Bucket{}, bad
		}
		d = 7 * 24 * time.Hour
	}
	if d < 24*time.Hour && (24*time.Hour)%d != 0 {
		return Bucket{}, bad
	}
	if d > 24*time.Hour && d != 7*24*time.Hour {
		return Bucket{}, bad
	}
	return Bucket{Width: d}, nil
}

// ChooseBucket gives the query's bucket: its own, or the request's interval widened along
// the ladder until the range has at most maxPoints buckets.
func ChooseBucket(q *Query, from, to time.Time, interval time.Duration, maxPoints int64) (Bucket, error) {
	if q.Bucket != "" {
		b, err := ParseBucket(q.Bucket)
		if err != nil {
			return b, err
		}
		if n := pointsIn(from, to, b.Width); n > MaxPoints {
			return b, BadQuery("bucket %s gives %d points over this time range (at most %d): choose a wider bucket or a shorter range", q.Bucket, n, MaxPoints)
		}
		return b, nil
	}
	if maxPoints <= 0 || maxPoints > MaxPoints {
		maxPoints = MaxPoints
	}
	for _, w := range bucketLadder {
		if w < interval {
			continue
		}
		if pointsIn(from, to, w) < maxPoints {
			return Bucket{Width: w}, nil
		}
	}
	last := bucketLadder[len(bucketLadder)-1]
	if pointsIn(from, to, last) <= MaxPoints {
		return Bucket{Width: last}, nil
	}
	return Bucket{}, BadQuery("time range %s to %s is too long: even weekly buckets give more than %d points", from.Format(time.RFC3339), to.Format(time.RFC3339), MaxPoints)
}

// pointsIn is the number of whole buckets of width w in [from, to), counted in seconds:
// time.Duration saturates at about 292 years, so to.Sub(from) would undercount long ranges.
func pointsIn(from, to time.Time, w time.Duration) int64 {
	return (to.Unix() - from.Unix()) / int64(w/time.Second)
}

// MaxPoints caps the buckets of one series whatever the request says.
const MaxPoints = 20_000
