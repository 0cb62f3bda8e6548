package events

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rejected is a row that failed validation: where it was and why.
type Rejected struct {
	File   string
	Line   int
	Reason string
}

func (r Rejected) String() string { return fmt.Sprintf("%s:%d: %s", r.File, r.Line, r.Reason) }

// FromFields builds an event from column → text. Empty text is a missing value. Unknown
// columns are an error (a misspelt column would otherwise be lost silently). Columns are
// read in the event model's order, so a row with several bad values always names the same
// one first.
func FromFields(fields map[string]string) (Event, error) {
	var e Event
	known := 0
	for _, c := range Columns {
		v, ok := fields[c.Name]
		if !ok {
			continue
		}
		known++
		if err := e.setField(c.Name, v); err != nil {
			return e, err
		}
	}
	if known < len(fields) {
		var unknown []string
		for k := range fields {
			if _, ok := columnPos[k]; !ok {
				unknown = append(unknown, k)
			}
		}
		slices.Sort(unknown)
		return e, fmt.Errorf("unknown column %q (the event model's columns are listed in docs/EVENTS.md)", unknown[0])
	}
	e.Normalize()
	return e, e.Validate()
}

// FromRecord builds an event from a CSV record and its header's columns (known columns,
// each once: ReadCSVRecords checks the header), like FromFields without a map per row.
func FromRecord(cols, rec []string) (Event, error) {
	var e Event
	if len(rec) != len(cols) {
		return e, fmt.Errorf("%d fields, but the header has %d", len(rec), len(cols))
	}
	for i, c := range cols {
		if e.setField(c, rec[i]) != nil {
			// Name the column FromFields names (the first bad one in the model's order,
			// not the file's), so a row is refused alike whichever path reads it.
			return FromFields(fieldsOf(cols, rec))
		}
	}
	e.Normalize()
	return e, e.Validate()
}

// Builder builds an event pair by pair, for decoders that read a row's columns one at a
// time (the importer's NDJSON fast path), without a map per row. Set refuses what the map
// path words better (an unknown or repeated column, a bad value); the caller then builds
// the row with FromFields, which names the problem as every other path does.
type Builder struct {
	e    Event
	seen uint64 // bit i: Columns[i] was named (TestBuilder checks that they fit)
}

// Reset starts a new row.
func (b *Builder) Reset() { *b = Builder{} }

// Set sets column k from its text v; null names the column without a value (JSON null).
func (b *Builder) Set(k, v string, null bool) bool {
	i, ok := columnPos[k]
	if !ok || b.seen&(1<<i) != 0 {
		return false
	}
	b.seen |= 1 << i
	return null || b.e.setField(k, v) == nil
}

// Event is the row's event, or why it is refused (as FromFields words it).
func (b *Builder) Event() (Event, error) {
	b.e.Normalize()
	return b.e, b.e.Validate()
}

// modelOrder gives m's keys in the event model's column order, unknown keys last by name.
func modelOrder[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		pa, oka := columnPos[a]
		pb, okb := columnPos[b]
		switch {
		case oka && okb:
			return pa - pb
		case oka != okb:
			if oka {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return keys
}

// columnPos is each column's position in Columns.
var columnPos = func() map[string]int {
	m := make(map[string]int, len(Columns))
	for i, c := range Columns {
		m[c.Name] = i
	}
	return m
}()

// setField sets column k from its text v (trimmed; empty is a missing value).
func (e *Event) setField(k, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	switch k {
	case "event_id":
		e.EventID = v
	case "ts":
		t, err := ParseTime(v)
		if err != nil {
			return fmt.Errorf("ts: %w", err)
		}
		e.TS = t
	case "type":
		e.Type = v
	case "message_id":
		e.MessageID = v
	case "reply_to":
		e.ReplyTo = v
	case "conversation_id":
		e.ConversationID = v
	case "contact_id":
		e.ContactID = v
	case "business_number":
		e.BusinessNumber = v
	case "sender":
		e.Sender = v
	case "agent_id":
		e.AgentID = v
	case "campaign":
		e.Campaign = v
	case "template":
		e.Template = v
	case "category":
		e.Category = v
	case "variant":
		e.Variant = v
	case "segment":
		e.Segment = v
	case "country":
		e.Country = v
	case "message_type":
		e.MessageType = v
	case "error_code":
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n != math.Trunc(n) || n < math.MinInt32 || n > math.MaxInt32 {
			return fmt.Errorf("error_code %q is not a whole number", v)
		}
		c := int32(n)
		e.ErrorCode = &c
	case "value":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("value %q is not a number", v)
		}
		e.Value = &f
	case "currency":
		e.Currency = v
	case "step":
		e.Step = v
	case "quality":
		e.Quality = v
	case "pricing_type":
		e.PricingType = v
	default:
		return fmt.Errorf("unknown column %q (the event model's columns are listed in docs/EVENTS.md)", k)
	}
	return nil
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// ParseTime reads RFC 3339 (a time without a zone is UTC), DuckDB's text form, or Unix
// epoch seconds or milliseconds.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "-:") {
		if n > 1e11 { // milliseconds
			return time.UnixMilli(int64(n)).UTC(), nil
		}
		sec, frac := math.Modf(n)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (use RFC 3339, e.g. 2026-03-01T10:00:00Z, or Unix seconds)", s)
}

// MaxLineBytes bounds one NDJSON line.
const MaxLineBytes = 1 << 20

// DecodeNDJSON reads one JSON object per line. Valid events go to emit in file order;
// invalid rows go to reject with their line and reason, and reading goes on.
func DecodeNDJSON(r io.Reader, file string, emit func(Event) error, reject func(Rejected)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		e, err := decodeJSONObject(b)
		if err != nil {
			reject(Rejected{file, line, err.Error()})
			continue
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: line longer than %d bytes", file, line+1, MaxLineBytes)
		}
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// DecodeJSONObject validates one JSON object as an event.
func DecodeJSONObject(b []byte) (Event, error) { return decodeJSONObject(b) }

func decodeJSONObject(b []byte) (Event, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Event{}, fmt.Errorf("not a JSON object: %v", err)
	}
	fields := make(map[string]string, len(raw))
	for _, k := range modelOrder(raw) { // the first bad key named, as FromFields does
		v := raw[k]
		s := strings.TrimSpace(string(v))
		switch {
		case s == "null":
			continue
		case strings.HasPrefix(s, `"`):
			var str string
			if err := json.Unmarshal(v, &str); err != nil {
				return Event{}, fmt.Errorf("%s: %v", k, err)
			}
			fields[k] = str
		case strings.HasPrefix(s, "{") || strings.HasPrefix(s, "["):
			return Event{}, fmt.Errorf("%s must be a string or number, not an object or list", k)
		default:
			fields[k] = s
		}
	}
	return FromFields(fields)
}

// DecodeCSV reads a CSV file whose header names SPEC columns.
func DecodeCSV(r io.Reader, file string, emit func(Event) error, reject func(Rejected)) error {
	return ReadCSV(r, file, nil, func(line int, fields map[string]string) error {
		e, err := FromFields(fields)
		if err != nil {
			reject(Rejected{file, line, err.Error()})
			return nil
		}
		return emit(e)
	}, reject)
}

// ReadCSV reads a CSV file whose header names SPEC columns (or columns extra accepts) and
// hands each well-formed record to each as column → text. Malformed records go to reject
// with their line; an error from each stops reading.
func ReadCSV(r io.Reader, file string, extra func(column string) bool, each func(line int, fields map[string]string) error, reject func(Rejected)) error {
	return ReadCSVRecords(r, file, extra, func(line int, cols, rec []string) error {
		return each(line, fieldsOf(cols, rec))
	}, reject)
}

// fieldsOf is a CSV record as column → text.
func fieldsOf(cols, rec []string) map[string]string {
	fields := make(map[string]string, len(cols))
	for i, c := range cols {
		fields[c] = rec[i]
	}
	return fields
}

// ReadCSVRecords is ReadCSV handing each record as it stands with the header's columns
// (trimmed, each once): no map per row. rec is the caller's to keep; cols is shared.
func ReadCSVRecords(r io.Reader, file string, extra func(column string) bool, each func(line int, cols, rec []string) error, reject func(Rejected)) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil
		}
		return fmt.Errorf("%s:1: cannot read the header: %w", file, err)
	}
	cols := make([]string, len(header))
	seen := make(map[string]bool, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if _, ok := columnPos[h]; !ok && (extra == nil || !extra(h)) {
			return fmt.Errorf("%s:1: unknown column %q in the header (the event model's columns are listed in docs/EVENTS.md)", file, h)
		}
		if seen[h] {
			return fmt.Errorf("%s:1: column %q appears twice in the header", file, h)
		}
		seen[h] = true
		cols[i] = h
	}
	for {
		rec, err := cr.Read()
		line, _ := cr.FieldPos(0)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				reject(Rejected{file, pe.Line, pe.Err.Error()})
				continue
			}
			return fmt.Errorf("%s: %w", file, err)
		}
		if len(rec) != len(cols) {
			reject(Rejected{file, line, fmt.Sprintf("%d fields, but the header has %d", len(rec), len(cols))})
			continue
		}
		if err := each(line, cols, slices.Clone(rec)); err != nil {
			return err
		}
	}
}
