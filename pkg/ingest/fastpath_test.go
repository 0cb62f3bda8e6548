package ingest

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/importer"
)

var importerScan = importer.ScanFlatJSON

// TestStatusFastPathMatchesGeneralPath: MapWebhook's two one-pass readings of status-only
// webhooks (the scanner without reflection, and one typed json.Unmarshal) each give exactly
// what the general path gives, and decline (ok=false) whenever the general path would
// archive something or fail. Checked on the test payloads and on thousands of random
// variations of a status webhook: fields left out, null, retyped, repeated or differently
// cased; escapes, unknown statuses, bad timestamps, nested extra values, whitespace.
func TestStatusFastPathMatchesGeneralPath(t *testing.T) {
	m := &Mapper{Hasher: testHasher(t), Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }}
	var tookScan, tookReflect int
	check := func(name string, body []byte) bool {
		t.Helper()
		general, gerr := m.mapGeneral(body)
		took := false
		for _, path := range []struct {
			name string
			f    func([]byte) (Mapped, bool)
			n    *int
		}{{"scanner", m.mapScannedStatuses, &tookScan}, {"typed", m.mapStatusesOnly, &tookReflect}} {
			fast, ok := path.f(body)
			if !ok {
				continue
			}
			took = true
			*path.n++
			require.NoError(t, gerr, "%s %s: the fast path took a body the general path rejects: %s", path.name, name, body)
			require.Empty(t, general.Raw, "%s %s: the fast path took a body the general path archives parts of: %s", path.name, name, body)
			require.Equal(t, general.Events, fast.Events, "%s %s: %s", path.name, name, body)
		}
		return took
	}
	for _, f := range []string{"statuses.json", "messages.json", "user_preferences.json", "quality.json", "unmapped.json"} {
		took := check(f, readPayload(t, f))
		assert.Equal(t, f == "statuses.json", took, "%s: fast path taken", f)
	}
	_, ok := scanStatusWebhook(readPayload(t, "statuses.json"))
	assert.True(t, ok, "the scanner reads Meta's status payload")

	rng := rand.New(rand.NewSource(1))
	pick := func(xs ...string) string { return xs[rng.Intn(len(xs))] }
	val := func(vals ...string) string {
		if rng.Intn(20) == 0 {
			return pick(vals...) // any variant
		}
		return vals[0] // the usual value
	}
	sp := func() string { return []string{"", "", "", " ", "\n\t"}[rng.Intn(5)] }
	field := func(k string, vals ...string) string {
		switch rng.Intn(80) {
		case 0:
			return "" // left out
		case 1:
			return fmt.Sprintf(`%q:null,`, k)
		case 2:
			return fmt.Sprintf(`%q:%s,`, strings.ToUpper(k[:1])+k[1:], vals[0]) // another case
		case 3:
			return fmt.Sprintf(`%q:%s,%q:%s,`, k, val(vals...), k, val(vals...)) // repeated
		}
		return fmt.Sprintf(`%s%q%s:%s%s,`, sp(), k, sp(), sp(), val(vals...))
	}
	status := func() string {
		return "{" +
			field("id", `"wamid.A1"`, `"wamid.B2"`, `""`, `5`, `"wamid.\u0041"`, `"wam\"id"`) +
			field("status", `"sent"`, `"delivered"`, `"read"`, `"failed"`, `"deleted"`, `"SENT"`, `7`, `"s\u0065nt"`) +
			field("timestamp", `"1750263773"`, `"17502637x"`, `""`, `1750263773`, `"99999999999999"`) +
			field("recipient_id", `"16505551234"`, `"+1 650 555 1234"`, `"12"`, `""`, `16505551234`, `"1650555é1234"`) +
			field("biz_opaque_callback_data", `"campaign=spring;variant=B"`, `"sender=agent;agent=a1;conversation=c9"`, `"country=ITA"`, `"sender=robot"`, `""`, `3`, `"campaign=été;variant=\u00e9"`, `"campaign=`+"\xff"+`"`) +
			field("pricing", `{"billable":true,"pricing_model":"PMP","category":"marketing","type":"regular"}`, `{"category":"authentication-international","billable":false}`, `{"category":"bogus","type":"x"}`, `"free"`, `{"billable":"yes"}`, `{"Category":"utility"}`) +
			field("conversation", `{"id":"c1","expiration_timestamp":"1750350180","origin":{"type":"utility"}}`, `{"origin":{"type":5}}`, `{"origin":null}`, `[]`) +
			field("errors", `[{"code":131026,"title":"x","error_data":{"details":"a\nb","x":[1,{"y":null}]}}]`, `[{"code":"131047"}]`, `[{"code":1.5}]`, `[]`, `{}`, `[{"code":-0}]`, `[{"code":1e3}]`) +
			`"extra":` + pick(`1`, `{"a":[true,false,null,"\u00e9"]}`, `"x"`, `-1.5e-3`, `[]`) + `}`
	}
	value := func() string {
		var sts []string
		for i := rng.Intn(3); i >= 0; i-- {
			sts = append(sts, status())
		}
		return "{" +
			field("messaging_product", `"whatsapp"`, `5`) +
			field("metadata", `{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}`, `{"phone_number_id":7}`, `{"phone_number_id":"1\u0030"}`) +
			field("contacts", `[{"profile":{"name":"Sheena"},"wa_id":"16505551234"}]`, `5`, `[]`) +
			field("messages", `[]`, `[ ]`, `[{"from":"16505551234","id":"wamid.M","timestamp":"1750263773","type":"text"}]`) +
			field("errors", `[]`, `[{"code":1}]`) +
			`"statuses":[` + strings.Join(sts, ",") + `]}`
	}
	took := 0
	const n = 5000
	for i := 0; i < n; i++ {
		change := `{"field":` + val(`"messages"`, `"user_preferences"`, `"account_update"`) + `,"value":` + value() + `}`
		if rng.Intn(40) == 0 {
			change = `{"field":"messages"}` // no value: archived
		}
		body := `{"object":` + val(`"whatsapp_business_account"`, `"page"`) + `,"entry":[{` +
			field("id", `"102290129340398"`, `102`) + field("time", `1750263773`, `"x"`, `"1750263773"`) +
			`"changes":[` + change + `]}]}` + sp()
		switch rng.Intn(60) {
		case 0:
			body = body[:len(body)-2]
		case 1:
			body += "x"
		}
		if check(fmt.Sprintf("variant %d", i), []byte(body)) {
			took++
		}
	}
	t.Logf("fast paths taken for %d of %d random variants (scanner %d, typed %d)", took, n, tookScan, tookReflect)
	assert.Greater(t, tookScan, n/50, "the variants exercise the scanner")
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
	sc := newRowScratch()
	fast, built, total := 0, 0, 20000
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
		got, gotErr := decodeRow(line, h, sc)
		want, wantErr := decodeRowGeneral(line, h)
		if m2 := map[string]string{}; importerScan(line, m2) {
			fast++
		}
		var eb events.Builder
		if valid, taken := importer.ScanFlatJSONInto(line, &eb); valid && taken {
			if _, err := eb.Event(); err == nil {
				built++ // straight into the event, no map
			}
		}
		if wantErr != nil {
			// Both name the first bad column in the event model's order.
			require.EqualError(t, gotErr, wantErr.Error(), "%s", line)
			continue
		}
		require.NoError(t, gotErr, "%s", line)
		require.Equal(t, want, got, "%s", line)
	}
	t.Logf("%d of %d rows on the fast path, %d valid events built without a map", fast, total, built)
	assert.Greater(t, fast, total/10)
	assert.Greater(t, built, 200, "the builder's path is taken")
}
