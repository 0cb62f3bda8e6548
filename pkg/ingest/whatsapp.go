package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/pseudo"
)

// This file maps WhatsApp Cloud API webhook payloads (field names as in Meta's
// documentation) to SPEC events. What does not map goes to the raw archive as RawItem.
// docs/INGEST.md has the mapping table.

// waPayload is the envelope of every WhatsApp Business Account webhook.
type waPayload struct {
	Object string    `json:"object"`
	Entry  []waEntry `json:"entry"`
}

type waEntry struct {
	ID      string      `json:"id"` // WhatsApp Business Account id
	Time    json.Number `json:"time"`
	Changes []waChange  `json:"changes"`
}

type waChange struct {
	Field string          `json:"field"`
	Value json.RawMessage `json:"value"`
}

type waMetadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

// waMessagesValue is the value of a "messages" change: statuses, inbound messages, and
// (with field "user_preferences") marketing preferences.
type waMessagesValue struct {
	MessagingProduct string            `json:"messaging_product"`
	Metadata         waMetadata        `json:"metadata"`
	Contacts         []json.RawMessage `json:"contacts"`
	Messages         []json.RawMessage `json:"messages"`
	Statuses         []json.RawMessage `json:"statuses"`
	UserPreferences  []json.RawMessage `json:"user_preferences"`
	Errors           []json.RawMessage `json:"errors"`
}

type waStatus struct {
	ID                    string          `json:"id"`
	Status                string          `json:"status"`
	Timestamp             string          `json:"timestamp"`
	RecipientID           string          `json:"recipient_id"`
	BizOpaqueCallbackData string          `json:"biz_opaque_callback_data"`
	Conversation          *waConversation `json:"conversation"`
	Pricing               *waPricing      `json:"pricing"`
	Errors                []waStatusError `json:"errors"`
}

type waConversation struct {
	ID     string `json:"id"`
	Origin struct {
		Type string `json:"type"`
	} `json:"origin"`
}

type waPricing struct {
	Billable     *bool  `json:"billable"`
	PricingModel string `json:"pricing_model"`
	Category     string `json:"category"`
	Type         string `json:"type"`
}

type waStatusError struct {
	Code  json.Number `json:"code"`
	Title string      `json:"title"`
}

type waMessage struct {
	From      string `json:"from"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Type      string `json:"type"`
	Context   *struct {
		From string `json:"from"`
		ID   string `json:"id"`
	} `json:"context"`
	Interactive *struct {
		Type        string          `json:"type"`
		ButtonReply json.RawMessage `json:"button_reply"`
		ListReply   json.RawMessage `json:"list_reply"`
	} `json:"interactive"`
	Button *struct {
		Text    string `json:"text"`
		Payload string `json:"payload"`
	} `json:"button"`
	Reaction *struct {
		MessageID string `json:"message_id"`
	} `json:"reaction"`
}

type waUserPreference struct {
	WaID      string      `json:"wa_id"`
	Detail    string      `json:"detail"`
	Category  string      `json:"category"`
	Value     string      `json:"value"`
	Timestamp json.Number `json:"timestamp"`
}

type waPhoneQuality struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	Event              string `json:"event"`
	CurrentLimit       string `json:"current_limit"`
}

type waTemplateQuality struct {
	PreviousQualityScore    string      `json:"previous_quality_score"`
	NewQualityScore         string      `json:"new_quality_score"`
	MessageTemplateID       json.Number `json:"message_template_id"`
	MessageTemplateName     string      `json:"message_template_name"`
	MessageTemplateLanguage string      `json:"message_template_language"`
}

// RawItem is a piece of a webhook that maps to no event, kept in the raw archive. Item has
// its phone numbers already replaced by contact ids.
type RawItem struct {
	Field   string          `json:"field"`
	EntryID string          `json:"entry_id,omitempty"`
	Reason  string          `json:"reason"`
	Item    json.RawMessage `json:"item"`
}

// Mapped is what one webhook request turns into.
type Mapped struct {
	Events []events.Event
	Raw    []RawItem
}

// Mapper turns webhook payloads into events.
type Mapper struct {
	Hasher *pseudo.Hasher
	// NumberIDs maps a display phone number (digits only) to its phone_number_id, for
	// webhooks that name the business number only by its display number
	// (phone_number_quality_update). Without an entry the digits are used.
	NumberIDs map[string]string
	// Now gives the receive time (for webhooks without a time of their own).
	Now func() time.Time
}

// waStatusPayload is a webhook that carries only statuses (most of the traffic), decoded
// in one pass (mapStatusesOnly).
type waStatusPayload struct {
	Object string `json:"object"`
	Entry  []struct {
		// The fields the general path decodes too, with the same types, so a body that
		// fails there fails here and takes the general path.
		ID      string      `json:"id"`
		Time    json.Number `json:"time"`
		Changes []struct {
			Field string    `json:"field"`
			Value *struct { // absent: the general path archives the change
				MessagingProduct string            `json:"messaging_product"`
				Metadata         waMetadata        `json:"metadata"`
				Contacts         []json.RawMessage `json:"contacts"`
				Messages         json.RawMessage   `json:"messages"`
				UserPreferences  json.RawMessage   `json:"user_preferences"`
				Errors           json.RawMessage   `json:"errors"`
				Statuses         []waStatus        `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

// mapStatusesOnly maps a webhook that holds nothing but statuses that all make valid
// events, in one JSON pass. Anything else (another field, messages, a status that does not
// decode or map) returns ok=false and MapWebhook takes the general path, which gives the
// same events and also the raw archive items.
func (m *Mapper) mapStatusesOnly(body []byte) (out Mapped, ok bool) {
	var p waStatusPayload
	if json.Unmarshal(body, &p) != nil || p.Object != "whatsapp_business_account" {
		return out, false
	}
	for _, en := range p.Entry {
		for _, ch := range en.Changes {
			v := ch.Value
			if v == nil || ch.Field != "messages" || !emptyList(v.Messages) || !emptyList(v.UserPreferences) || !emptyList(v.Errors) {
				return out, false
			}
			for i := range v.Statuses {
				e, reason := m.statusEvent(&v.Statuses[i], v.Metadata.PhoneNumberID)
				if reason != "" {
					return Mapped{}, false
				}
				if out.Events == nil {
					out.Events = make([]events.Event, 0, len(v.Statuses))
				}
				out.Events = append(out.Events, e)
			}
		}
	}
	return out, true
}

// emptyList: an absent, null or empty JSON list.
func emptyList(r json.RawMessage) bool {
	switch strings.TrimSpace(string(r)) {
	case "", "null", "[]":
		return true
	}
	return false
}

// MapWebhook maps one webhook body. It fails only when the body is not a JSON object;
// everything inside that does not map is returned in Raw with a reason.
func (m *Mapper) MapWebhook(body []byte) (Mapped, error) {
	if out, ok := m.mapScannedStatuses(body); ok {
		return out, nil
	}
	if out, ok := m.mapStatusesOnly(body); ok {
		return out, nil
	}
	return m.mapGeneral(body)
}

// mapScannedStatuses is mapStatusesOnly on scanStatusWebhook's one-pass reading (no
// reflection): ok=false when the scanner declines the body or a status does not make a
// valid event.
func (m *Mapper) mapScannedStatuses(body []byte) (out Mapped, ok bool) {
	sts, ok := scanStatusWebhook(body)
	if !ok {
		return out, false
	}
	if len(sts) > 0 {
		out.Events = make([]events.Event, 0, len(sts))
	}
	for i := range sts {
		e, reason := m.statusEvent(&sts[i].st, sts[i].biz)
		if reason != "" {
			return Mapped{}, false
		}
		out.Events = append(out.Events, e)
	}
	return out, true
}

// mapGeneral maps any webhook body, change by change and item by item.
func (m *Mapper) mapGeneral(body []byte) (Mapped, error) {
	var p waPayload
	var out Mapped
	if err := json.Unmarshal(body, &p); err != nil {
		return out, fmt.Errorf("webhook body is not a WhatsApp webhook JSON object: %v", err)
	}
	if p.Object != "whatsapp_business_account" {
		out.Raw = append(out.Raw, RawItem{Field: "object:" + p.Object, Reason: "unknown webhook object", Item: m.redact(body)})
		return out, nil
	}
	for _, en := range p.Entry {
		for _, ch := range en.Changes {
			m.mapChange(&out, en, ch)
		}
	}
	return out, nil
}

func (m *Mapper) mapChange(out *Mapped, en waEntry, ch waChange) {
	raw := func(reason string, item json.RawMessage) {
		out.Raw = append(out.Raw, RawItem{Field: ch.Field, EntryID: en.ID, Reason: reason, Item: m.redact(item)})
	}
	switch ch.Field {
	case "messages", "user_preferences":
		var v waMessagesValue
		if err := json.Unmarshal(ch.Value, &v); err != nil {
			raw("value does not decode: "+err.Error(), ch.Value)
			return
		}
		biz := v.Metadata.PhoneNumberID
		for _, s := range v.Statuses {
			m.mapStatus(out, biz, s, raw)
		}
		for _, msg := range v.Messages {
			m.mapMessage(out, biz, msg, raw)
		}
		for _, up := range v.UserPreferences {
			m.mapPreference(out, biz, up, raw)
		}
		for _, e := range v.Errors {
			raw("webhook error", e)
		}
	case "phone_number_quality_update":
		var q waPhoneQuality
		if err := json.Unmarshal(ch.Value, &q); err != nil {
			raw("value does not decode: "+err.Error(), ch.Value)
			return
		}
		quality := map[string]string{"FLAGGED": "RED", "UNFLAGGED": "YELLOW"}[strings.ToUpper(q.Event)]
		if quality == "" {
			raw("phone_number_quality_update event "+q.Event+" is a messaging limit change, not a quality rating", ch.Value)
			return
		}
		digits := digitsOnly(q.DisplayPhoneNumber)
		biz := m.NumberIDs[digits]
		if biz == "" {
			biz = digits
		}
		e := events.Event{
			EventID:        changeID("quality", en, ch),
			TS:             m.entryTime(en),
			Type:           events.TypeQualityChanged,
			BusinessNumber: biz,
			Quality:        quality,
			Sender:         "system",
		}
		m.add(out, e, ch.Value, raw)
	case "message_template_quality_update":
		var q waTemplateQuality
		if err := json.Unmarshal(ch.Value, &q); err != nil {
			raw("value does not decode: "+err.Error(), ch.Value)
			return
		}
		quality := strings.ToUpper(q.NewQualityScore)
		if quality != "GREEN" && quality != "YELLOW" && quality != "RED" {
			raw("template quality "+q.NewQualityScore+" is not GREEN, YELLOW or RED", ch.Value)
			return
		}
		e := events.Event{
			EventID:        changeID("template_quality", en, ch),
			TS:             m.entryTime(en),
			Type:           events.TypeQualityChanged,
			BusinessNumber: en.ID, // templates belong to the business account
			Template:       q.MessageTemplateName,
			Quality:        quality,
			Sender:         "system",
		}
		m.add(out, e, ch.Value, raw)
	default:
		raw("webhook field is not mapped to events", ch.Value)
	}
}

// add validates a mapped event; one that fails goes to the raw archive with the reason.
func (m *Mapper) add(out *Mapped, e events.Event, item json.RawMessage, raw func(string, json.RawMessage)) {
	e.Normalize()
	if err := e.Validate(); err != nil {
		raw("does not make a valid event: "+err.Error(), item)
		return
	}
	out.Events = append(out.Events, e)
}

var statusTypes = map[string]string{
	"sent": events.TypeSent, "delivered": events.TypeDelivered,
	"read": events.TypeRead, "failed": events.TypeFailed,
}

func (m *Mapper) mapStatus(out *Mapped, biz string, item json.RawMessage, raw func(string, json.RawMessage)) {
	var s waStatus
	if err := json.Unmarshal(item, &s); err != nil {
		raw("status does not decode: "+err.Error(), item)
		return
	}
	e, reason := m.statusEvent(&s, biz)
	if reason != "" {
		raw(reason, item)
		return
	}
	m.add(out, e, item, raw)
}

// statusEvent maps a decoded status to its event, normalized and validated; reason says
// why it maps to none (the item then goes to the raw archive).
func (m *Mapper) statusEvent(s *waStatus, biz string) (events.Event, string) {
	typ, ok := statusTypes[s.Status]
	if !ok {
		return events.Event{}, "status " + strconv.Quote(s.Status) + " is not mapped to events"
	}
	ts, err := unixTime(s.Timestamp)
	if err != nil {
		return events.Event{}, "status timestamp: " + err.Error()
	}
	e := events.Event{
		Type:           typ,
		TS:             ts,
		MessageID:      s.ID,
		BusinessNumber: biz,
		ContactID:      m.contact(s.RecipientID),
	}
	e.EventID = events.DerivedID(&e) // message id + status: Meta's retries and CSV exports are one event
	applyCallbackData(&e, s.BizOpaqueCallbackData)
	if s.Pricing != nil {
		e.Category = category(s.Pricing.Category)
		if pt := strings.ToLower(s.Pricing.Type); oneOf(pt, events.PricingTypes) {
			e.PricingType = pt
		}
	}
	if e.Category == "" && s.Conversation != nil {
		e.Category = category(s.Conversation.Origin.Type)
	}
	if typ == events.TypeFailed && len(s.Errors) > 0 {
		if n, err := strconv.ParseInt(string(s.Errors[0].Code), 10, 32); err == nil {
			c := int32(n)
			e.ErrorCode = &c
		}
	}
	if typ == events.TypeSent && e.Template != "" && e.MessageType == "" {
		e.MessageType = "template"
	}
	e.Normalize()
	if err := e.Validate(); err != nil {
		return e, "does not make a valid event: " + err.Error()
	}
	return e, ""
}

func (m *Mapper) mapMessage(out *Mapped, biz string, item json.RawMessage, raw func(string, json.RawMessage)) {
	var msg waMessage
	if err := json.Unmarshal(item, &msg); err != nil {
		raw("message does not decode: "+err.Error(), item)
		return
	}
	if msg.Type == "system" {
		raw("system message (e.g. the customer changed number) is not mapped to events", item)
		return
	}
	ts, err := unixTime(msg.Timestamp)
	if err != nil {
		raw("message timestamp: "+err.Error(), item)
		return
	}
	contact := m.contact(msg.From)
	replyTo := ""
	if msg.Context != nil {
		replyTo = msg.Context.ID
	}
	if replyTo == "" && msg.Reaction != nil {
		replyTo = msg.Reaction.MessageID
	}
	e := events.Event{
		EventID:        msg.ID + ":received",
		Type:           events.TypeReceived,
		TS:             ts,
		MessageID:      msg.ID,
		ReplyTo:        replyTo,
		ContactID:      contact,
		BusinessNumber: biz,
		Sender:         "customer",
		MessageType:    msg.Type,
	}
	if msg.ID == "" {
		raw("message has no id", item)
		return
	}
	m.add(out, e, item, raw)
	// A template quick-reply button or an interactive reply is also a click on the
	// message it answers.
	clicked := msg.Type == "button" && msg.Button != nil
	if msg.Type == "interactive" && msg.Interactive != nil {
		switch msg.Interactive.Type {
		case "button_reply", "list_reply":
			clicked = true
		}
	}
	if clicked {
		c := events.Event{
			EventID:        msg.ID + ":clicked",
			Type:           events.TypeClicked,
			TS:             ts,
			ReplyTo:        replyTo,
			ContactID:      contact,
			BusinessNumber: biz,
			Sender:         "customer",
			MessageType:    msg.Type,
		}
		m.add(out, c, item, raw)
	}
}

func (m *Mapper) mapPreference(out *Mapped, biz string, item json.RawMessage, raw func(string, json.RawMessage)) {
	var up waUserPreference
	if err := json.Unmarshal(item, &up); err != nil {
		raw("user preference does not decode: "+err.Error(), item)
		return
	}
	typ := map[string]string{"stop": events.TypeOptedOut, "resume": events.TypeOptedIn}[strings.ToLower(up.Value)]
	if typ == "" {
		raw("user preference value "+strconv.Quote(up.Value)+" is not mapped to events", item)
		return
	}
	ts, err := unixTime(string(up.Timestamp))
	if err != nil {
		raw("user preference timestamp: "+err.Error(), item)
		return
	}
	e := events.Event{
		Type:           typ,
		TS:             ts,
		ContactID:      m.contact(up.WaID),
		BusinessNumber: biz,
		Sender:         "customer",
	}
	e.EventID = events.DerivedID(&e) // type, time, contact, number: the same for Meta's retries
	m.add(out, e, item, raw)
}

// contact hashes a phone number; an unparsable one gives no contact (it is never stored).
func (m *Mapper) contact(phone string) string {
	if phone == "" || m.Hasher == nil {
		return ""
	}
	id, err := m.Hasher.ContactID(phone)
	if err != nil {
		return ""
	}
	return id
}

func (m *Mapper) entryTime(en waEntry) time.Time {
	if t, err := unixTime(string(en.Time)); err == nil {
		return t
	}
	if m.Now != nil {
		return m.Now().UTC()
	}
	return time.Now().UTC()
}

// changeID keys a change that has no natural id by its content, so Meta's retries of the
// same change are one event even when the receive time differs.
func changeID(kind string, en waEntry, ch waChange) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", en.ID, en.Time, ch.Field)
	h.Write(ch.Value)
	return "wa:" + kind + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

func unixTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("missing")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not Unix seconds", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

func category(c string) string {
	c = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(c)), "-", "_")
	if oneOf(c, events.Categories) {
		return c
	}
	return ""
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func digitsOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// CallbackKeys are the keys of the biz_opaque_callback_data convention (docs/INGEST.md):
// "campaign=spring_sale;template=spring_v2;variant=B;segment=new_lead". Values may be
// percent-encoded; unknown keys and text that is not key=value are ignored.
var CallbackKeys = []string{"campaign", "template", "variant", "segment", "sender", "agent", "conversation", "country"}

// ParseCallbackData reads the biz_opaque_callback_data convention.
func ParseCallbackData(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if !oneOf(k, CallbackKeys) {
			continue
		}
		if u, err := url.QueryUnescape(strings.TrimSpace(v)); err == nil {
			v = u
		}
		if v = strings.TrimSpace(v); v != "" {
			out[k] = v
		}
	}
	return out
}

// applyCallbackData copies the dimensions a business put in biz_opaque_callback_data at
// send time onto a status event. Values that would fail validation are left out.
func applyCallbackData(e *events.Event, data string) {
	if data == "" {
		return
	}
	d := ParseCallbackData(data)
	e.Campaign, e.Template, e.Variant, e.Segment = d["campaign"], d["template"], d["variant"], d["segment"]
	e.AgentID, e.ConversationID = d["agent"], d["conversation"]
	if s := strings.ToLower(d["sender"]); oneOf(s, events.Senders) {
		e.Sender = s
	} else if e.Type == events.TypeSent && e.Campaign != "" {
		e.Sender = "campaign"
	}
	if c := strings.ToUpper(d["country"]); len(c) == 2 {
		e.Country = c
	}
}

// phoneKeys are the keys whose string values are phone numbers in Meta's payloads.
var phoneKeys = map[string]bool{
	"wa_id": true, "from": true, "recipient_id": true, "to": true, "phone": true,
	"phone_number": true, "display_phone_number": true, "new_wa_id": true, "customer": true,
}

// textKeys hold free text that can carry phone numbers (system messages, profile names).
var textKeys = map[string]bool{"body": true, "name": true, "formatted_name": true}

// redact returns item with phone numbers replaced by contact ids and free text removed,
// for the raw archive.
func (m *Mapper) redact(item json.RawMessage) json.RawMessage {
	var v any
	if err := json.Unmarshal(item, &v); err != nil {
		b, _ := json.Marshal(map[string]string{"undecodable": "redacted"})
		return b
	}
	v = m.redactValue(v)
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}

func (m *Mapper) redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			lk := strings.ToLower(k)
			if s, ok := val.(string); ok && phoneKeys[lk] {
				if id := m.contact(s); id != "" {
					x[k] = id
				} else if s != "" {
					x[k] = "redacted"
				}
				continue
			}
			if _, ok := val.(string); ok && textKeys[lk] {
				x[k] = "redacted"
				continue
			}
			x[k] = m.redactValue(val)
		}
		return x
	case []any:
		for i := range x {
			x[i] = m.redactValue(x[i])
		}
		return x
	}
	return v
}
