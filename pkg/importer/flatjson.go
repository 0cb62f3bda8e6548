package importer

import (
	"unicode/utf8"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

// ScanFlatJSON is scanFlatObject for other ingest paths (the events API).
func ScanFlatJSON(b []byte, m map[string]string) bool { return scanFlatObject(b, m) }

// ScanFlatJSONInto is scanFlat into an event builder, for other ingest paths (the events
// API): taken is false when the builder refused a pair (read the row as a map then).
func ScanFlatJSONInto(b []byte, eb *events.Builder) (valid, taken bool) { return scanFlat(b, eb.Set) }

// scanFlatObject reads one JSON object whose values are all strings without escapes,
// numbers, true, false or null into m, exactly as events.DecodeJSONObject sees it: a
// number or literal as its text, null as no value (a later null removes an earlier value
// of the same key), the last of repeated keys winning. It returns false for anything else
// (an escape, a control character or invalid UTF-8 in a string, a nested object or list,
// invalid JSON), and the caller uses the general decoder, which also words the errors.
// It allocates only the strings it keeps.
func scanFlatObject(b []byte, m map[string]string) bool {
	valid, _ := scanFlat(b, func(key, val string, null bool) bool {
		if null {
			delete(m, key)
		} else {
			m[key] = val
		}
		return true
	})
	return valid
}

// scanFlat is scanFlatObject handing each key and value to put (null: the JSON null),
// in the object's order. taken is false when put refused a pair, which stops the scan (the
// caller then reads the row another way, and valid says nothing); otherwise valid is
// scanFlatObject's result.
func scanFlat(b []byte, put func(key, val string, null bool) bool) (valid, taken bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false, true
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b), true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false, true
		}
		key, j, ok := scanString(b, i)
		if !ok {
			return false, true
		}
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return false, true
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return false, true
		}
		switch c := b[i]; {
		case c == '"':
			v, j, ok := scanString(b, i)
			if !ok {
				return false, true
			}
			if !put(key, v, false) {
				return true, false
			}
			i = j
		case c == 'n':
			if !literal(b, i, "null") {
				return false, true
			}
			if !put(key, "", true) {
				return true, false
			}
			i += 4
		case c == 't':
			if !literal(b, i, "true") {
				return false, true
			}
			if !put(key, "true", false) {
				return true, false
			}
			i += 4
		case c == 'f':
			if !literal(b, i, "false") {
				return false, true
			}
			if !put(key, "false", false) {
				return true, false
			}
			i += 5
		case c == '-' || (c >= '0' && c <= '9'):
			j, ok := scanNumber(b, i)
			if !ok {
				return false, true
			}
			if !put(key, string(b[i:j]), false) {
				return true, false
			}
			i = j
		default:
			return false, true
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return false, true
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return skipWS(b, i+1) == len(b), true
		default:
			return false, true
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func literal(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// scanString reads the string starting at the quote b[i]; ok is false for an escape, a
// control character or invalid UTF-8 (cases the general decoder handles).
func scanString(b []byte, i int) (s string, end int, ok bool) {
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			raw := b[i+1 : j]
			if !ascii && !utf8.Valid(raw) {
				return "", 0, false
			}
			return string(raw), j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", 0, false
}

// scanNumber reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func scanNumber(b []byte, i int) (end int, ok bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}
