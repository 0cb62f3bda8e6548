// Package pseudo pseudonymises phone numbers (SPEC section 4): a contact's number is
// replaced by a keyed hash before anything is stored, so the store never holds a raw
// number and nobody without the key can recompute the mapping. The receiver and the
// importer both use Hasher, so the same number gives the same contact_id on every path.
package pseudo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeyEnv is the environment variable that holds the hash key.
const KeyEnv = "BLUETICKS_HASH_KEY"

// MinKeyBytes is the shortest key accepted: a short key can be brute-forced together with
// the small space of phone numbers.
const MinKeyBytes = 16

// ErrNoKey is returned when no key is configured.
var ErrNoKey = fmt.Errorf("no pseudonymisation key: set %s (at least %d bytes, kept secret and stable: changing it changes every contact_id)", KeyEnv, MinKeyBytes)

// Hasher maps phone numbers to contact ids with a secret key.
type Hasher struct {
	key []byte
}

// New returns a hasher for key (at least MinKeyBytes bytes).
func New(key []byte) (*Hasher, error) {
	if len(key) == 0 {
		return nil, ErrNoKey
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("%s is too short: %d bytes, want at least %d", KeyEnv, len(key), MinKeyBytes)
	}
	k := make([]byte, len(key))
	copy(k, key)
	return &Hasher{key: k}, nil
}

// String never prints the key.
func (h *Hasher) String() string { return "pseudo.Hasher{key: redacted}" }

// Normalize returns the E.164 form of a phone number: "+" and 8 to 15 digits. It accepts
// the forms found in WhatsApp payloads and exports: "16315551181" (wa_id), "+1 631-555-1181",
// "(+39) 333 123 4567", "0039 333…" (00 as the international prefix).
func Normalize(phone string) (string, error) {
	s := strings.TrimSpace(phone)
	if s == "" {
		return "", errors.New("phone number is empty")
	}
	var b strings.Builder
	b.Grow(len(s) + 1)
	b.WriteByte('+')
	plus := false
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+':
			if plus || b.Len() > 1 {
				return "", fmt.Errorf("phone number has a misplaced '+' at position %d", i)
			}
			plus = true
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/' || r == '\u00a0':
		default:
			return "", fmt.Errorf("phone number contains %q (want digits, spaces, dashes, dots, parentheses and a leading +)", r)
		}
	}
	n := b.String()
	if !plus && strings.HasPrefix(n, "+00") {
		n = "+" + n[3:]
	}
	digits := len(n) - 1
	if digits < 8 || digits > 15 {
		return "", fmt.Errorf("phone number has %d digits, want 8 to 15 (E.164 with country code)", digits)
	}
	if n[1] == '0' {
		return "", errors.New("phone number must start with a country code, not 0")
	}
	return n, nil
}

// ContactID returns the pseudonymous contact id of a phone number: "c_" and the first 16
// bytes, in hex, of HMAC-SHA256(key, E.164 number). The error never contains the number.
func (h *Hasher) ContactID(phone string) (string, error) {
	n, err := Normalize(phone)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(n))
	sum := m.Sum(nil)
	return "c_" + hex.EncodeToString(sum[:16]), nil
}

// PhoneColumns are the input columns that carry a raw phone number. Import paths hash them
// into contact_id with ReplacePhone; they are never stored.
var PhoneColumns = []string{"phone", "wa_id"}

// IsPhoneColumn reports whether name is one of PhoneColumns.
func IsPhoneColumn(name string) bool {
	for _, c := range PhoneColumns {
		if name == c {
			return true
		}
	}
	return false
}

// ReplacePhone moves a phone column of a row (column → text) into contact_id, hashed. A
// row may carry one phone column, and not together with a contact_id. A nil hasher with a
// phone present is an error naming KeyEnv. Errors never contain the number.
func ReplacePhone(fields map[string]string, h *Hasher) error {
	col, phone := "", ""
	for _, c := range PhoneColumns {
		v, ok := fields[c]
		if !ok {
			continue
		}
		delete(fields, c)
		if strings.TrimSpace(v) == "" {
			continue
		}
		if phone != "" {
			return errors.New("give the phone number in one column, phone or wa_id")
		}
		col, phone = c, v
	}
	if phone == "" {
		return nil
	}
	if strings.TrimSpace(fields["contact_id"]) != "" {
		return fmt.Errorf("give either contact_id or a phone number (%s), not both", col)
	}
	if h == nil {
		return fmt.Errorf("column %s carries phone numbers, which are stored only as a keyed hash: set %s", col, KeyEnv)
	}
	id, err := h.ContactID(phone)
	if err != nil {
		return fmt.Errorf("%s: %v", col, err)
	}
	fields["contact_id"] = id
	return nil
}
