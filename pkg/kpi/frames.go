package kpi

import (
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// NoneLabel is the label value of a missing dimension in a series.
const NoneLabel = "(none)"

// qualityMappings colour and name the quality states.
var qualityMappings = data.ValueMappings{
	data.ValueMapper{
		"0": {Text: "GREEN", Color: "green", Index: 0},
		"1": {Text: "YELLOW", Color: "yellow", Index: 1},
		"2": {Text: "RED", Color: "red", Index: 2},
	},
}

func fieldConfig(m *Metric) *data.FieldConfig {
	fc := &data.FieldConfig{Unit: m.Unit(), Description: m.Description, DisplayName: ""}
	switch m.Kind {
	case KindRate:
		min, max := data.ConfFloat64(0), data.ConfFloat64(1)
		fc.Min, fc.Max = &min, &max
	case KindState:
		fc.Mappings = qualityMappings
		min, max := data.ConfFloat64(0), data.ConfFloat64(2)
		fc.Min, fc.Max = &min, &max
	}
	return fc
}

func meta(sql []string, notices ...data.Notice) *data.FrameMeta {
	return &data.FrameMeta{ExecutedQueryString: strings.Join(sql, ";\n"), Notices: notices}
}

// seriesFrames turns a time series result into one frame per group, every bucket present.
func seriesFrames(s *series, q *Query, grid []time.Time) data.Frames {
	frames := make(data.Frames, 0, len(s.order))
	for _, k := range s.order {
		gd := s.groups[k]
		labels := data.Labels{}
		for i, d := range q.GroupBy {
			if i < len(gd.key) && gd.key[i].Valid {
				labels[d] = gd.key[i].String
			} else {
				labels[d] = NoneLabel
			}
		}
		times := make([]time.Time, len(grid))
		copy(times, grid)
		fields := []*data.Field{data.NewField("time", nil, times)}
		for mi, m := range s.metrics {
			vals := make([]*float64, len(grid))
			for bi, t := range grid {
				cell := gd.buckets[t.Unix()]
				if cell != nil && cell[mi] != nil {
					v := *cell[mi]
					vals[bi] = &v
				} else if m.Additive() {
					zero := 0.0
					vals[bi] = &zero
				}
			}
			f := data.NewField(m.ID, labels, vals).SetConfig(fieldConfig(m))
			fields = append(fields, f)
		}
		fr := data.NewFrame(q.Metrics[0], fields...)
		if len(s.metrics) > 1 || len(q.GroupBy) > 0 {
			fr.Name = ""
		}
		fr.Meta = meta(s.sql)
		fr.Meta.Type = data.FrameTypeTimeSeriesMulti
		fr.Meta.TypeVersion = data.FrameTypeVersion{0, 1}
		frames = append(frames, fr)
	}
	return frames
}

// tableFrame turns a whole-range result into one frame: group columns, then metrics.
func tableFrame(s *series, q *Query) *data.Frame {
	fields := make([]*data.Field, 0, len(q.GroupBy)+len(s.metrics))
	for i, d := range q.GroupBy {
		vals := make([]*string, len(s.order))
		for r, k := range s.order {
			key := s.groups[k].key
			if i < len(key) && key[i].Valid {
				v := key[i].String
				vals[r] = &v
			}
		}
		fields = append(fields, data.NewField(d, nil, vals))
	}
	for mi, m := range s.metrics {
		vals := make([]*float64, len(s.order))
		for r, k := range s.order {
			var cell []*float64
			for _, c := range s.groups[k].buckets {
				cell = c
			}
			if cell != nil && cell[mi] != nil {
				v := *cell[mi]
				vals[r] = &v
			} else if m.Additive() {
				zero := 0.0
				vals[r] = &zero
			}
		}
		fields = append(fields, data.NewField(m.ID, nil, vals).SetConfig(fieldConfig(m)))
	}
	fr := data.NewFrame("", fields...)
	fr.Meta = meta(s.sql)
	fr.Meta.PreferredVisualization = data.VisTypeTable
	return fr
}
