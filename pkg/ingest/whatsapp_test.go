package ingest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/pseudo"
)

const (
	testHashKey  = "test-hash-key-0123456789"
	testPhone    = "16505551234"
	wamidSent    = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"
	wamidFailed  = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI4QzdBMDM2RTQ0NjE1QTk1RjIA"
	wamidAgent   = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJBRkU0QjE1RjM3QjFFQzE0MDkA"
	phoneNumID   = "106540352242922"
	wabaID       = "102290129340398"
	displayPhone = "15550783881"
)

func testHasher(t testing.TB) *pseudo.Hasher {
	h, err := pseudo.New([]byte(testHashKey))
	require.NoError(t, err)
	return h
}

func contactOf(t testing.TB, phone string) string {
	id, err := testHasher(t).ContactID(phone)
	require.NoError(t, err)
	return id
}

func readPayload(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", name))
	require.NoError(t, err)
	return b
}

func mapFile(t *testing.T, name string) Mapped {
	m := &Mapper{Hasher: testHasher(t), Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }}
	out, err := m.MapWebhook(readPayload(t, name))
	require.NoError(t, err)
	return out
}

func byID(evs []events.Event) map[string]events.Event {
	m := map[string]events.Event{}
	for _, e := range evs {
		m[e.EventID] = e
	}
	return m
}

func TestMapStatuses(t *testing.T) {
	out := mapFile(t, "statuses.json")
	assert.Empty(t, out.Raw)
	require.Len(t, out.Events, 6)
	ev := byID(out.Events)
	contact := contactOf(t, testPhone)

	sent := ev[wamidSent+":sent"]
	assert.Equal(t, events.TypeSent, sent.Type)
	assert.Equal(t, time.Unix(1750263773, 0).UTC(), sent.TS)
	assert.Equal(t, wamidSent, sent.MessageID)
	assert.Equal(t, contact, sent.ContactID, "recipient_id is hashed into contact_id")
	assert.Equal(t, phoneNumID, sent.BusinessNumber)
	assert.Equal(t, "spring_sale", sent.Campaign)
	assert.Equal(t, "spring_sale_v2", sent.Template)
	assert.Equal(t, "B", sent.Variant)
	assert.Equal(t, "new_lead", sent.Segment)
	assert.Equal(t, "IT", sent.Country)
	assert.Equal(t, "campaign", sent.Sender, "a send with a campaign is a campaign message")
	assert.Equal(t, "marketing", sent.Category)
	assert.Equal(t, "regular", sent.PricingType)
	assert.Equal(t, "template", sent.MessageType)

	del := ev[wamidSent+":delivered"]
	assert.Equal(t, events.TypeDelivered, del.Type)
	assert.Equal(t, "spring_sale", del.Campaign, "statuses echo the callback data")
	assert.Empty(t, del.Sender, "only sends have a sender")

	read := ev[wamidSent+":read"]
	assert.Equal(t, events.TypeRead, read.Type)
	assert.Equal(t, time.Unix(1750263900, 0).UTC(), read.TS)

	failed := ev[wamidFailed+":failed"]
	require.NotNil(t, failed.ErrorCode)
	assert.EqualValues(t, 131026, *failed.ErrorCode)
	assert.Equal(t, contactOf(t, "16505550000"), failed.ContactID)

	agent := ev[wamidAgent+":sent"]
	assert.Equal(t, "agent", agent.Sender)
	assert.Equal(t, "a17", agent.AgentID)
	assert.Equal(t, "cv-88", agent.ConversationID)
	assert.Equal(t, "service", agent.Category)
	assert.Equal(t, "free_customer_service", agent.PricingType)
	assert.Equal(t, contact, agent.ContactID, "every spelling of a number is one contact")

	auth := ev["wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJBRkU0QjE1RjM3QjFFQzE0MDkB:sent"]
	assert.Equal(t, "authentication_international", auth.Category, "Meta's hyphenated category is normalised")
	assert.Empty(t, auth.Sender)

	for _, e := range out.Events {
		assert.NotContains(t, e.ContactID, "5551234")
	}
}

func TestMapMessages(t *testing.T) {
	out := mapFile(t, "messages.json")
	contact := contactOf(t, testPhone)
	ev := byID(out.Events)
	require.Len(t, out.Events, 7, "4 received, 3 clicks")

	text := ev["wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=:received"]
	assert.Equal(t, events.TypeReceived, text.Type)
	assert.Equal(t, "text", text.MessageType)
	assert.Equal(t, "customer", text.Sender)
	assert.Equal(t, contact, text.ContactID)
	assert.Equal(t, phoneNumID, text.BusinessNumber)
	assert.Empty(t, text.ReplyTo)

	btn := "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQ3QUM1QjcwRjBCNjU5NTY0ODc4RQA="
	assert.Equal(t, wamidSent, ev[btn+":received"].ReplyTo, "context.id is reply_to")
	assert.Equal(t, "button", ev[btn+":received"].MessageType)
	assert.Equal(t, events.TypeClicked, ev[btn+":clicked"].Type, "a template quick-reply is a click")
	assert.Equal(t, wamidSent, ev[btn+":clicked"].ReplyTo)
	assert.Equal(t, contact, ev[btn+":clicked"].ContactID)

	for _, id := range []string{"wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQ1QzY4QjM0NzQ3RjM5QkNBMjg4MwA=", "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQ5NjBGNjZDMTlCOEI2OTdBNEYwMQA="} {
		assert.Equal(t, "interactive", ev[id+":received"].MessageType)
		assert.Equal(t, wamidAgent, ev[id+":received"].ReplyTo)
		assert.Equal(t, events.TypeClicked, ev[id+":clicked"].Type, "button_reply and list_reply are clicks")
		assert.Equal(t, wamidAgent, ev[id+":clicked"].ReplyTo)
	}

	require.Len(t, out.Raw, 1, "the system message goes to the raw archive")
	raw := string(out.Raw[0].Item)
	assert.Contains(t, raw, "user_changed_number")
	assert.NotContains(t, raw, "5551234", "no raw phone number in the archive")
	assert.NotContains(t, raw, "5559999")
	assert.Contains(t, raw, contactOf(t, "16505559999"))
}

func TestMapUserPreferences(t *testing.T) {
	out := mapFile(t, "user_preferences.json")
	assert.Empty(t, out.Raw)
	require.Len(t, out.Events, 2)
	assert.Equal(t, events.TypeOptedOut, out.Events[0].Type)
	assert.Equal(t, time.Unix(1731705721, 0).UTC(), out.Events[0].TS)
	assert.Equal(t, contactOf(t, testPhone), out.Events[0].ContactID)
	assert.Equal(t, phoneNumID, out.Events[0].BusinessNumber)
	assert.Equal(t, events.TypeOptedIn, out.Events[1].Type)
	// Meta's retry of the same webhook gives the same ids.
	again := mapFile(t, "user_preferences.json")
	assert.Equal(t, out.Events[0].EventID, again.Events[0].EventID)
}

func TestMapQuality(t *testing.T) {
	out := mapFile(t, "quality.json")
	require.Len(t, out.Events, 2)
	num, tpl := out.Events[0], out.Events[1]
	assert.Equal(t, events.TypeQualityChanged, num.Type)
	assert.Equal(t, "RED", num.Quality, "FLAGGED: the number's quality dropped to low")
	assert.Equal(t, displayPhone, num.BusinessNumber, "without --number-ids the display number's digits")
	assert.Equal(t, time.Unix(1739321024, 0).UTC(), num.TS)
	assert.Empty(t, num.Template)

	assert.Equal(t, "YELLOW", tpl.Quality)
	assert.Equal(t, "spring_sale_v2", tpl.Template)
	assert.Equal(t, wabaID, tpl.BusinessNumber)

	require.Len(t, out.Raw, 1, "a messaging limit change is archived")
	assert.Contains(t, out.Raw[0].Reason, "DOWNGRADE")
	assert.NotContains(t, string(out.Raw[0].Item), displayPhone)

	m := &Mapper{Hasher: testHasher(t), NumberIDs: map[string]string{displayPhone: phoneNumID}}
	mapped, err := m.MapWebhook(readPayload(t, "quality.json"))
	require.NoError(t, err)
	assert.Equal(t, phoneNumID, mapped.Events[0].BusinessNumber, "--number-ids maps the display number")
	assert.Equal(t, out.Events[1].EventID, mapped.Events[1].EventID, "ids are stable across retries")
}

func TestMapUnmapped(t *testing.T) {
	out := mapFile(t, "unmapped.json")
	assert.Empty(t, out.Events)
	require.Len(t, out.Raw, 2)
	assert.Equal(t, "account_update", out.Raw[0].Field)
	assert.Equal(t, wabaID, out.Raw[0].EntryID)
	assert.NotContains(t, string(out.Raw[0].Item), displayPhone, "phone_number is hashed")
	assert.Equal(t, "template_category_update", out.Raw[1].Field)
	assert.Contains(t, string(out.Raw[1].Item), "order_confirmation")

	m := &Mapper{Hasher: testHasher(t)}
	other, err := m.MapWebhook([]byte(`{"object":"instagram","entry":[]}`))
	require.NoError(t, err)
	require.Len(t, other.Raw, 1)
	_, err = m.MapWebhook([]byte(`not json`))
	require.Error(t, err)
}

func TestMapUnknownStatusAndBadTimestamp(t *testing.T) {
	body := `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
		"metadata":{"phone_number_id":"9"},
		"statuses":[{"id":"wamid.X","status":"deleted","timestamp":"1750263773","recipient_id":"16505551234"},
		            {"id":"wamid.Y","status":"read","timestamp":"yesterday","recipient_id":"16505551234"}],
		"errors":[{"code":131051,"title":"Message type unknown"}]}}]}]}`
	m := &Mapper{Hasher: testHasher(t)}
	out, err := m.MapWebhook([]byte(body))
	require.NoError(t, err)
	assert.Empty(t, out.Events)
	require.Len(t, out.Raw, 3, "nothing is dropped silently")
	for _, r := range out.Raw {
		assert.NotContains(t, string(r.Item), "5551234")
	}
	assert.Contains(t, out.Raw[0].Reason, "deleted")
	assert.Contains(t, out.Raw[1].Reason, "timestamp")
}

func TestParseCallbackData(t *testing.T) {
	d := ParseCallbackData("campaign=spring%3Bsale; Template = t1 ;variant=B;segment=;junk;other=x;sender=bot")
	assert.Equal(t, map[string]string{"campaign": "spring;sale", "template": "t1", "variant": "B", "sender": "bot"}, d)
	assert.Empty(t, ParseCallbackData("order-12345"))

	e := events.Event{Type: events.TypeSent}
	applyCallbackData(&e, "campaign=c;sender=robot;country=ITA")
	assert.Equal(t, "campaign", e.Sender, "an unknown sender falls back to the default")
	assert.Empty(t, e.Country, "a country that is not two letters is left out")
}

func TestRedactIsValidJSON(t *testing.T) {
	m := &Mapper{Hasher: testHasher(t)}
	b := m.redact(json.RawMessage(`{"a":[{"wa_id":"16505551234","from":"not-a-number"}],"profile":{"name":"Sheena"}}`))
	var v any
	require.NoError(t, json.Unmarshal(b, &v))
	s := string(b)
	assert.False(t, strings.Contains(s, "16505551234") || strings.Contains(s, "Sheena") || strings.Contains(s, "not-a-number"), s)
}
