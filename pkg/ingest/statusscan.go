package ingest

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// scanStatusWebhook reads a status-only webhook (most of the traffic) in one pass over the
// body, into the statuses and their business numbers, without reflection. It is strict:
// it accepts only what it is sure encoding/json would decode into waStatusPayload the same
// way, and reports ok=false for anything else (an escape or control character in a
// string, invalid UTF-8, null, a repeated or differently cased known key, a value of
// another type, anything but an empty list of messages, user preferences or errors,
// invalid JSON), so the caller falls back to the reflection path.
func scanStatusWebhook(b []byte) (sts []scannedStatus, ok bool) {
	s := &jscan{b: b}
	object := ""
	ok = s.object([]string{"object", "entry"}, func(k int) bool {
		if k == 0 {
			v, ok := s.str()
			object = v
			return ok
		}
		return s.array(func() bool { return s.entry(&sts) })
	})
	if !ok || object != "whatsapp_business_account" {
		return nil, false
	}
	s.ws()
	return sts, s.i == len(s.b)
}

// scannedStatus is one status with the business number of its change.
type scannedStatus struct {
	st  waStatus
	biz string
}

type jscan struct {
	b []byte
	i int
}

// maxScanDepth bounds nesting in skipped values (deeper: the reflection path).
const maxScanDepth = 64

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte (0 at the end).
func (s *jscan) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// str reads a string without escapes or control characters, valid UTF-8.
func (s *jscan) str() (string, bool) {
	if s.peek() != '"' {
		return "", false
	}
	ascii := true
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			raw := s.b[s.i+1 : j]
			if !ascii && !utf8.Valid(raw) {
				return "", false
			}
			s.i = j + 1
			return string(raw), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", false
}

// number reads a JSON number and returns its text.
func (s *jscan) number() (string, bool) {
	s.ws()
	start := s.i
	b := s.b
	i := s.i
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		digits()
	default:
		return "", false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return "", false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", false
		}
	}
	s.i = i
	return string(b[start:i]), true
}

func (s *jscan) lit(l string) bool {
	s.ws()
	if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		return true
	}
	return false
}

// skip validates and skips any JSON value (strings may hold valid escapes here: their
// text is not used).
func (s *jscan) skip(depth int) bool {
	if depth > maxScanDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '{':
		return s.object(nil, func(int) bool { return s.skip(depth + 1) })
	case c == '[':
		return s.array(func() bool { return s.skip(depth + 1) })
	case c == '"':
		return s.skipString()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	default:
		_, ok := s.number()
		return ok
	}
}

func (s *jscan) skipString() bool {
	b := s.b
	i := s.i + 1
	ascii := true
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(b[s.i+1:i]) {
				return false // decodes with replacement characters: let the general path judge
			}
			s.i = i + 1
			return true
		case c < 0x20:
			return false
		case c >= 0x80:
			ascii = false
		case c == '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
				continue
			case 'u':
				if i+6 > len(b) {
					return false
				}
				for _, h := range b[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				i += 6
				continue
			default:
				return false
			}
		}
		i++
	}
	return false
}

// object reads an object; for a key in known (exact match) it calls value with the key's
// index (value reads the value), other keys' values are skipped. A repeated known key, or
// a key that matches a known one only case-insensitively (encoding/json would take it),
// fails the scan. With known nil every value goes to value with index -1.
func (s *jscan) object(known []string, value func(k int) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	var seen uint64
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		key, ok := s.keyString()
		if !ok || s.peek() != ':' {
			return false
		}
		s.i++
		k := -1
		if known != nil {
			for n, name := range known {
				if key == name {
					k = n
					break
				}
				if strings.EqualFold(key, name) {
					return false
				}
			}
		}
		switch {
		case k >= 0:
			if seen&(1<<k) != 0 {
				return false
			}
			seen |= 1 << k
			if !value(k) {
				return false
			}
		case known == nil:
			if !value(-1) {
				return false
			}
		default:
			if !s.skip(1) {
				return false
			}
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// keyString reads an object key; keys with escapes fail the scan (they could spell a
// known key).
func (s *jscan) keyString() (string, bool) { return s.str() }

// array reads an array, calling elem for each element.
func (s *jscan) array(elem func() bool) bool {
	if s.peek() != '[' {
		return false
	}
	s.i++
	if s.peek() == ']' {
		s.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// emptyArray reads a value that must be [] (absent keys never get here).
func (s *jscan) emptyArray() bool {
	return s.array(func() bool { return false })
}

func (s *jscan) entry(sts *[]scannedStatus) bool {
	return s.object([]string{"id", "time", "changes"}, func(k int) bool {
		switch k {
		case 0:
			_, ok := s.str()
			return ok
		case 1:
			_, ok := s.number()
			return ok
		}
		return s.array(func() bool { return s.change(sts) })
	})
}

func (s *jscan) change(sts *[]scannedStatus) bool {
	field := ""
	var biz string
	hasValue := false
	start := len(*sts)
	ok := s.object([]string{"field", "value"}, func(k int) bool {
		if k == 0 {
			v, ok := s.str()
			field = v
			return ok
		}
		hasValue = true
		return s.object([]string{"messaging_product", "metadata", "contacts", "messages", "user_preferences", "errors", "statuses"}, func(k int) bool {
			switch k {
			case 0:
				_, ok := s.str()
				return ok
			case 1:
				return s.object([]string{"display_phone_number", "phone_number_id"}, func(k int) bool {
					v, ok := s.str()
					if k == 1 {
						biz = v
					}
					return ok
				})
			case 2:
				return s.array(func() bool { return s.skip(2) })
			case 3, 4, 5:
				return s.emptyArray()
			}
			return s.array(func() bool {
				var st waStatus
				if !s.status(&st) {
					return false
				}
				*sts = append(*sts, scannedStatus{st: st})
				return true
			})
		})
	})
	if !ok || field != "messages" || !hasValue {
		return false // a change without a value goes to the raw archive: the general path
	}
	// The metadata may come after the statuses.
	for i := start; i < len(*sts); i++ {
		(*sts)[i].biz = biz
	}
	return true
}

func (s *jscan) status(st *waStatus) bool {
	return s.object([]string{"id", "status", "timestamp", "recipient_id", "biz_opaque_callback_data", "conversation", "pricing", "errors"}, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			st.ID, ok = s.str()
		case 1:
			st.Status, ok = s.str()
		case 2:
			st.Timestamp, ok = s.str()
		case 3:
			st.RecipientID, ok = s.str()
		case 4:
			st.BizOpaqueCallbackData, ok = s.str()
		case 5:
			st.Conversation = &waConversation{}
			ok = s.object([]string{"id", "origin"}, func(k int) bool {
				if k == 0 {
					var ok bool
					st.Conversation.ID, ok = s.str()
					return ok
				}
				return s.object([]string{"type"}, func(int) bool {
					var ok bool
					st.Conversation.Origin.Type, ok = s.str()
					return ok
				})
			})
		case 6:
			st.Pricing = &waPricing{}
			ok = s.object([]string{"billable", "pricing_model", "category", "type"}, func(k int) bool {
				var ok bool
				switch k {
				case 0:
					var v bool
					switch {
					case s.lit("true"):
						v, ok = true, true
					case s.lit("false"):
						ok = true
					}
					st.Pricing.Billable = &v
				case 1:
					st.Pricing.PricingModel, ok = s.str()
				case 2:
					st.Pricing.Category, ok = s.str()
				case 3:
					st.Pricing.Type, ok = s.str()
				}
				return ok
			})
		case 7:
			st.Errors = []waStatusError{}
			ok = s.array(func() bool {
				var e waStatusError
				ok := s.object([]string{"code", "title"}, func(k int) bool {
					if k == 0 {
						v, ok := s.number()
						e.Code = json.Number(v)
						return ok
					}
					var ok bool
					e.Title, ok = s.str()
					return ok
				})
				st.Errors = append(st.Errors, e)
				return ok
			})
		}
		return ok
	})
}
