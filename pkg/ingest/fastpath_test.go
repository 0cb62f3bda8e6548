package ingest

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatusFastPathMatchesGeneralPath: MapWebhook's one-pass decoding of status-only
// webhooks gives exactly what the general path gives, and declines (ok=false) whenever the
// general path would archive something or fail. Checked on the test payloads and on
// thousands of random variations of a status webhook (fields removed, retyped, unknown
// statuses, bad timestamps, extra values).
func TestStatusFastPathMatchesGeneralPath(t *testing.T) {
	m := &Mapper{Hasher: testHasher(t), Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }}
	check := func(name string, body []byte) bool {
		t.Helper()
		fast, ok := m.mapStatusesOnly(body)
		general, gerr := m.mapGeneral(body)
		if !ok {
			return false
		}
		require.NoError(t, gerr, "%s: the fast path took a body the general path rejects: %s", name, body)
		require.Empty(t, general.Raw, "%s: the fast path took a body the general path archives parts of: %s", name, body)
		require.Equal(t, general.Events, fast.Events, "%s: %s", name, body)
		return true
	}
	for _, f := range []string{"statuses.json", "messages.json", "user_preferences.json", "quality.json", "unmapped.json"} {
		took := check(f, readPayload(t, f))
		assert.Equal(t, f == "statuses.json", took, "%s: fast path taken", f)
	}

	rng := rand.New(rand.NewSource(1))
	pick := func(xs ...string) string { return xs[rng.Intn(len(xs))] }
	val := func(vals ...string) string {
		if rng.Intn(20) == 0 {
			return pick(vals...) // any variant
		}
		return vals[0] // the usual value
	}
	field := func(k string, vals ...string) string {
		if rng.Intn(40) == 0 {
			return "" // left out
		}
		return fmt.Sprintf(`%q:%s,`, k, val(vals...))
	}
	status := func() string {
		s := "{" +
			field("id", `"wamid.A1"`, `"wamid.B2"`, `""`, `5`, `null`) +
			field("status", `"sent"`, `"delivered"`, `"read"`, `"failed"`, `"deleted"`, `"SENT"`, `7`) +
			field("timestamp", `"1750263773"`, `"17502637x"`, `""`, `1750263773`, `"99999999999999"`) +
			field("recipient_id", `"16505551234"`, `"+1 650 555 1234"`, `"12"`, `""`, `16505551234`) +
			field("biz_opaque_callback_data", `"campaign=spring;variant=B"`, `"sender=agent;agent=a1;conversation=c9"`, `"country=ITA"`, `"sender=robot"`, `""`, `3`) +
			field("pricing", `{"category":"marketing","type":"regular"}`, `{"category":"authentication-international"}`, `{"category":"bogus","type":"x"}`, `"free"`, `null`) +
			field("conversation", `{"id":"c1","origin":{"type":"utility"}}`, `{"origin":{"type":5}}`, `null`) +
			field("errors", `[{"code":131026,"title":"x"}]`, `[{"code":"131047"}]`, `[{"code":1.5}]`, `[]`, `{}`) +
			`"extra":1}`
		return s
	}
	value := func() string {
		var sts []string
		for i := rng.Intn(3); i >= 0; i-- {
			sts = append(sts, status())
		}
		return "{" +
			field("messaging_product", `"whatsapp"`, `5`) +
			field("metadata", `{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}`, `{"phone_number_id":7}`, `null`) +
			field("contacts", `[{"wa_id":"16505551234"}]`, `5`, `null`) +
			field("messages", `[]`, `null`, `[{"from":"16505551234","id":"wamid.M","timestamp":"1750263773","type":"text"}]`) +
			field("errors", `[]`, `[{"code":1}]`) +
			`"statuses":[` + strings.Join(sts, ",") + `]}`
	}
	took := 0
	const n = 3000
	for i := 0; i < n; i++ {
		body := `{"object":` + val(`"whatsapp_business_account"`, `"page"`) + `,"entry":[{` +
			field("id", `"102290129340398"`, `102`) + field("time", `1750263773`, `"x"`) +
			`"changes":[{"field":` + val(`"messages"`, `"user_preferences"`, `"account_update"`) + `,"value":` + value() + `}]}]}`
		if check(fmt.Sprintf("variant %d", i), []byte(body)) {
			took++
		}
	}
	t.Logf("fast path taken for %d of %d random variants", took, n)
	assert.Greater(t, took, n/50, "the variants exercise the fast path")
}
