package pseudo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testKey = "0123456789abcdef-test-key"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"16315551181":        "+16315551181",
		"+1 631-555-1181":    "+16315551181",
		"(+39) 333 123 4567": "+393331234567",
		"0039 333 1234567":   "+393331234567",
		" +44 20 7946 0958 ": "+442079460958",
	} {
		got, err := Normalize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "12345", "1234567890123456", "+1 631 555 11a1", "1+6315551181", "0612345678"} {
		_, err := Normalize(bad)
		assert.Error(t, err, bad)
	}
}

func TestContactID(t *testing.T) {
	h, err := New([]byte(testKey))
	require.NoError(t, err)
	a, err := h.ContactID("16315551181")
	require.NoError(t, err)
	b, err := h.ContactID("+1 (631) 555-1181")
	require.NoError(t, err)
	assert.Equal(t, a, b, "every spelling of one number is one contact")

	m := hmac.New(sha256.New, []byte(testKey))
	m.Write([]byte("+16315551181"))
	assert.Equal(t, "c_"+hex.EncodeToString(m.Sum(nil)[:16]), a)
	assert.Len(t, a, 2+32)

	other, _ := New([]byte(testKey + "x"))
	c, _ := other.ContactID("16315551181")
	assert.NotEqual(t, a, c, "another key gives other ids")

	_, err = h.ContactID("not a number 16315551181")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "6315551181", "errors never echo the number")
}

func TestNewKey(t *testing.T) {
	_, err := New(nil)
	require.ErrorIs(t, err, ErrNoKey)
	assert.Contains(t, err.Error(), KeyEnv)
	_, err = New([]byte("short"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), KeyEnv)
	h, _ := New([]byte(testKey))
	assert.False(t, strings.Contains(h.String(), testKey))
}
