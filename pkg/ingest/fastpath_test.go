package ingest

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/importer"
)

var importerScan = importer.ScanFlatJSON

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

// TestEventsAPIFastPathMatchesGeneral: events API rows read in one pass give the same
// event or the same rejection as the general path (JSON map, pseudonymisation by
// re-encoding, events.DecodeJSONObject), on random rows with escapes, nested values,
// nulls, repeated keys, numbers in and out of JSON's grammar and phone columns.
func TestEventsAPIFastPathMatchesGeneral(t *testing.T) {
	h := testHasher(t)
	rng := rand.New(rand.NewSource(7))
	pick := func(xs ...string) string {
		if rng.Intn(10) < 6 {
			return xs[0]
		}
		return xs[rng.Intn(len(xs))]
	}
	value := func(key string) string {
		switch key {
		case "ts":
			return pick(`"2026-03-01T10:00:00Z"`, `1772359200`, `"x"`, `null`, `1.5e9`)
		case "type":
			return pick(`"converted"`, `"sent"`, `"csat"`, `"Blocked"`, `"opened"`, `null`)
		case "value":
			return pick(`10`, `-0`, `0.5`, `1e2`, `01`, `1.`, `"3"`, `true`, `null`, `{"a":1}`, `1e400`)
		case "phone", "wa_id":
			return pick(`"+39 333 123 4567"`, `393331234567`, `"12"`, `""`, `null`, `[1]`)
		}
		return pick(`"a"`, `"c_1"`, `""`, `"é"`, `"q\"q"`, `"\u00e9"`, `null`, `7`, `false`, `{}`, `"`+"\x02"+`"`)
	}
	keys := []string{"contact_id", "event_id", "ts", "type", "message_id", "value", "currency", "phone", "wa_id", "conversation_id", "city"}
	m := map[string]string{}
	fast, total := 0, 20000
	for i := 0; i < total; i++ {
		var parts []string
		for k := rng.Intn(7); k >= 0; k-- {
			key := keys[rng.Intn(len(keys))]
			parts = append(parts, fmt.Sprintf(`%q:%s`, key, value(key)))
		}
		parts = append(parts, `"event_id":"e`+fmt.Sprint(i)+`"`, `"ts":"2026-03-01T10:00:00Z"`, `"type":"converted"`)
		rng.Shuffle(len(parts), func(a, b int) { parts[a], parts[b] = parts[b], parts[a] })
		line := []byte("{" + strings.Join(parts, ", ") + "}")
		if rng.Intn(30) == 0 {
			line = line[:len(line)-1]
		}
		got, gotErr := decodeRow(line, h, m)
		want, wantErr := decodeRowGeneral(line, h)
		if m2 := map[string]string{}; importerScan(line, m2) {
			fast++
		}
		if wantErr != nil {
			require.Error(t, gotErr, "%s", line)
			if gotErr.Error() != wantErr.Error() {
				same := false // several bad columns: FromFields names one in map order
				for k := 0; k < 200 && !same; k++ {
					_, e := decodeRowGeneral(line, h)
					same = e.Error() == gotErr.Error()
				}
				require.True(t, same, "%s:\n fast: %v\n general: %v", line, gotErr, wantErr)
			}
			continue
		}
		require.NoError(t, gotErr, "%s", line)
		require.Equal(t, want, got, "%s", line)
	}
	t.Logf("%d of %d rows on the fast path", fast, total)
	assert.Greater(t, fast, total/10)
}
