package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/importer"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/pseudo"
)

// RowError is a rejected row of an events API request: its position (from 1: the line of
// NDJSON, the element of a JSON array), its event_id when it had one, and why.
type RowError struct {
	Row     int    `json:"row"`
	EventID string `json:"event_id,omitempty"`
	Reason  string `json:"reason"`
}

// errTooManyRows stops decoding a request with more rows than allowed.
var errTooManyRows = errors.New("too many rows")

// DecodeRows reads an events API body: a JSON array of objects, or NDJSON (one object per
// line). Every row is validated like `blueticks import` does; raw phone numbers are
// pseudonymised. Valid events and rejected rows are returned; err is for a body that
// cannot be read at all.
func DecodeRows(body []byte, h *pseudo.Hasher, maxRows int) (evs []events.Event, rejected []RowError, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, nil, errors.New("the body is empty: send NDJSON (one event per line) or a JSON array of events")
	}
	rows := 0
	scratch := newRowScratch()
	handle := func(row int, b []byte) error {
		rows++
		if maxRows > 0 && rows > maxRows {
			return errTooManyRows
		}
		e, err := decodeRow(b, h, scratch)
		if err != nil {
			rejected = append(rejected, RowError{Row: row, EventID: peekEventID(b), Reason: err.Error()})
			return nil
		}
		evs = append(evs, e)
		return nil
	}
	if trimmed[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		if _, err := dec.Token(); err != nil {
			return nil, nil, fmt.Errorf("the body is not a JSON array: %v", err)
		}
		row := 0
		for dec.More() {
			row++
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, nil, fmt.Errorf("element %d of the JSON array does not decode: %v", row, err)
			}
			if err := handle(row, raw); err != nil {
				return nil, nil, err
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, nil, fmt.Errorf("the JSON array is not closed: %v", err)
		}
		return evs, rejected, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(trimmed))
	sc.Buffer(make([]byte, 0, 64*1024), events.MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := handle(line, b); err != nil {
			return nil, nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("line %d: %v", line+1, err)
	}
	return evs, rejected, nil
}

// DecodeRow validates one JSON object as an event. A `phone` or `wa_id` column is hashed
// into contact_id (a row may not carry both a phone number and a contact_id).
func DecodeRow(b []byte, h *pseudo.Hasher) (events.Event, error) {
	return decodeRow(b, h, newRowScratch())
}

// rowScratch is what decodeRow reuses from row to row.
type rowScratch struct {
	m map[string]string
	b events.Builder
}

func newRowScratch() *rowScratch { return &rowScratch{m: make(map[string]string, 32)} }

// decodeRow is DecodeRow with scratch space to reuse: flat objects (strings without
// escapes, numbers, literals: nearly every row) are read in one pass, straight into the
// event when their keys are columns, each once, with good values; anything else by the
// general path, which also words the errors. All give the same event or the same rejection.
func decodeRow(b []byte, h *pseudo.Hasher, sc *rowScratch) (events.Event, error) {
	sc.b.Reset()
	if valid, taken := importer.ScanFlatJSONInto(b, &sc.b); taken {
		if !valid {
			return decodeRowGeneral(b, h)
		}
		return sc.b.Event()
	}
	m := sc.m
	clear(m)
	if !importer.ScanFlatJSON(b, m) {
		return decodeRowGeneral(b, h)
	}
	_, phone := m["phone"]
	_, waID := m["wa_id"]
	if phone || waID {
		if err := pseudo.ReplacePhone(m, h); err != nil {
			return events.Event{}, err
		}
	}
	return events.FromFields(m)
}

// decodeRowGeneral decodes any JSON row.
func decodeRowGeneral(b []byte, h *pseudo.Hasher) (events.Event, error) {
	if hasPhoneKey(b) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return events.Event{}, fmt.Errorf("not a JSON object: %v", err)
		}
		var err error
		if b, err = PseudonymiseRow(m, h); err != nil {
			return events.Event{}, err
		}
	}
	return events.DecodeJSONObject(b)
}

func hasPhoneKey(b []byte) bool {
	for _, c := range pseudo.PhoneColumns {
		if bytes.Contains(b, []byte(`"`+c+`"`)) {
			return true
		}
	}
	return false
}

// PseudonymiseRow replaces a phone column of a decoded JSON row by contact_id (with
// pseudo.ReplacePhone, the rules of every import path) and returns the row re-encoded.
func PseudonymiseRow(m map[string]json.RawMessage, h *pseudo.Hasher) ([]byte, error) {
	f := map[string]string{}
	for _, c := range append([]string{"contact_id"}, pseudo.PhoneColumns...) {
		v, ok := m[c]
		if !ok {
			continue
		}
		s := strings.TrimSpace(string(v))
		if s == "null" {
			continue
		}
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			str = s // a number
		}
		f[c] = str
	}
	if err := pseudo.ReplacePhone(f, h); err != nil {
		return nil, err
	}
	for _, c := range pseudo.PhoneColumns {
		delete(m, c)
	}
	if id, ok := f["contact_id"]; ok {
		m["contact_id"], _ = json.Marshal(id)
	}
	return json.Marshal(m)
}

func peekEventID(b []byte) string {
	var v struct {
		EventID any `json:"event_id"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	if s, ok := v.EventID.(string); ok && len(s) <= 200 {
		return s
	}
	return ""
}
