// Package events defines the Blue Ticks event model (SPEC section 1): the columns every
// source is mapped to, the event types, and the validation every ingest path applies.
package events

import (
	"fmt"
	"strings"
	"time"
)

// Event is one row of the store. A missing optional column is the empty string, or nil for
// the two numeric columns (stored as NULL).
type Event struct {
	EventID        string    `json:"event_id"`
	TS             time.Time `json:"ts"`
	Type           string    `json:"type"`
	MessageID      string    `json:"message_id,omitempty"`
	ReplyTo        string    `json:"reply_to,omitempty"`
	ConversationID string    `json:"conversation_id,omitempty"`
	ContactID      string    `json:"contact_id,omitempty"`
	BusinessNumber string    `json:"business_number,omitempty"`
	Sender         string    `json:"sender,omitempty"`
	AgentID        string    `json:"agent_id,omitempty"`
	Campaign       string    `json:"campaign,omitempty"`
	Template       string    `json:"template,omitempty"`
	Category       string    `json:"category,omitempty"`
	Variant        string    `json:"variant,omitempty"`
	Segment        string    `json:"segment,omitempty"`
	Country        string    `json:"country,omitempty"`
	MessageType    string    `json:"message_type,omitempty"`
	ErrorCode      *int32    `json:"error_code,omitempty"`
	Value          *float64  `json:"value,omitempty"`
	Currency       string    `json:"currency,omitempty"`
	Step           string    `json:"step,omitempty"`
	Quality        string    `json:"quality,omitempty"`
	PricingType    string    `json:"pricing_type,omitempty"`
}

// Clone copies the event, including the values behind its pointers.
func (e *Event) Clone() Event {
	c := *e
	if e.ErrorCode != nil {
		v := *e.ErrorCode
		c.ErrorCode = &v
	}
	if e.Value != nil {
		v := *e.Value
		c.Value = &v
	}
	return c
}

// Column describes one column of the event model, in storage order.
type Column struct {
	Name     string
	SQLType  string // DuckDB type
	Required bool
}

// Columns is the event model in storage order. Every segment and every view uses it.
var Columns = []Column{
	{"event_id", "VARCHAR", true},
	{"ts", "TIMESTAMPTZ", true},
	{"type", "VARCHAR", true},
	{"message_id", "VARCHAR", false},
	{"reply_to", "VARCHAR", false},
	{"conversation_id", "VARCHAR", false},
	{"contact_id", "VARCHAR", false},
	{"business_number", "VARCHAR", false},
	{"sender", "VARCHAR", false},
	{"agent_id", "VARCHAR", false},
	{"campaign", "VARCHAR", false},
	{"template", "VARCHAR", false},
	{"category", "VARCHAR", false},
	{"variant", "VARCHAR", false},
	{"segment", "VARCHAR", false},
	{"country", "VARCHAR", false},
	{"message_type", "VARCHAR", false},
	{"error_code", "INTEGER", false},
	{"value", "DOUBLE", false},
	{"currency", "VARCHAR", false},
	{"step", "VARCHAR", false},
	{"quality", "VARCHAR", false},
	{"pricing_type", "VARCHAR", false},
}

// Event types (SPEC section 1).
const (
	TypeSent               = "sent"
	TypeDelivered          = "delivered"
	TypeRead               = "read"
	TypeFailed             = "failed"
	TypeReceived           = "received"
	TypeClicked            = "clicked"
	TypeConverted          = "converted"
	TypeOptedIn            = "opted_in"
	TypeOptedOut           = "opted_out"
	TypeBlocked            = "blocked"
	TypeReported           = "reported"
	TypeConversationOpened = "conversation_opened"
	TypeEscalated          = "escalated"
	TypeResolved           = "resolved"
	TypeAbandoned          = "abandoned"
	TypeCSAT               = "csat"
	TypeNPS                = "nps"
	TypeQualityChanged     = "quality_changed"
)

// Types lists every valid event type.
var Types = []string{
	TypeSent, TypeDelivered, TypeRead, TypeFailed, TypeReceived, TypeClicked, TypeConverted,
	TypeOptedIn, TypeOptedOut, TypeBlocked, TypeReported, TypeConversationOpened,
	TypeEscalated, TypeResolved, TypeAbandoned, TypeCSAT, TypeNPS, TypeQualityChanged,
}

// Senders lists the valid values of the sender column.
var Senders = []string{"campaign", "bot", "agent", "customer", "system"}

// Categories lists Meta's pricing categories (lower case).
var Categories = []string{"marketing", "marketing_lite", "utility", "authentication",
	"authentication_international", "service", "referral_conversion"}

// Qualities lists the quality ratings.
var Qualities = []string{"GREEN", "YELLOW", "RED"}

// PricingTypes lists Meta's pricing.type values.
var PricingTypes = []string{"regular", "free_customer_service", "free_entry_point"}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// Normalize fixes what can be fixed without guessing: UTC timestamps, lower-case
// category, type and sender, upper-case quality and country.
func (e *Event) Normalize() {
	e.TS = e.TS.UTC()
	e.Type = strings.ToLower(strings.TrimSpace(e.Type))
	e.Sender = strings.ToLower(strings.TrimSpace(e.Sender))
	e.Category = strings.ToLower(strings.TrimSpace(e.Category))
	e.Quality = strings.ToUpper(strings.TrimSpace(e.Quality))
	e.Country = strings.ToUpper(strings.TrimSpace(e.Country))
	e.Currency = strings.ToUpper(strings.TrimSpace(e.Currency))
	e.PricingType = strings.ToLower(strings.TrimSpace(e.PricingType))
	if e.EventID == "" {
		e.EventID = DerivedID(e)
	}
}

// DerivedID gives an event without an id the key of SPEC section 5: the message id plus the
// status for statuses, the inbound message id for received, so the same status arriving by
// webhook and again in a CSV export is one event. Other events without an id get a key from
// all their identifying columns.
func DerivedID(e *Event) string {
	switch e.Type {
	case TypeSent, TypeDelivered, TypeRead, TypeFailed:
		if e.MessageID != "" {
			return e.MessageID + ":" + e.Type
		}
	case TypeReceived:
		if e.MessageID != "" {
			return e.MessageID + ":received"
		}
	}
	return fmt.Sprintf("%s:%s:%s:%s:%s:%s", e.Type, e.TS.UTC().Format(time.RFC3339Nano),
		e.ContactID, e.ConversationID, e.ReplyTo, e.BusinessNumber)
}

// Validate reports the first problem that makes the event unusable, naming the column.
// Call Normalize first.
func (e *Event) Validate() error {
	if e.EventID == "" {
		return fmt.Errorf("event_id is required")
	}
	if e.TS.IsZero() {
		return fmt.Errorf("ts is required")
	}
	if e.TS.Year() < 2000 || e.TS.Year() > 2200 {
		return fmt.Errorf("ts %s is outside the years 2000-2200", e.TS.Format(time.RFC3339))
	}
	if e.Type == "" {
		return fmt.Errorf("type is required")
	}
	if !oneOf(e.Type, Types) {
		return fmt.Errorf("type %q is not an event type (allowed: %s)", e.Type, strings.Join(Types, ", "))
	}
	if e.Sender != "" && !oneOf(e.Sender, Senders) {
		return fmt.Errorf("sender %q is not allowed (allowed: %s)", e.Sender, strings.Join(Senders, ", "))
	}
	if e.Category != "" && !oneOf(e.Category, Categories) {
		return fmt.Errorf("category %q is not a pricing category (allowed: %s)", e.Category, strings.Join(Categories, ", "))
	}
	if e.PricingType != "" && !oneOf(e.PricingType, PricingTypes) {
		return fmt.Errorf("pricing_type %q is not allowed (allowed: %s)", e.PricingType, strings.Join(PricingTypes, ", "))
	}
	switch e.Type {
	case TypeSent, TypeDelivered, TypeRead, TypeFailed:
		if e.MessageID == "" {
			return fmt.Errorf("message_id is required for %s events", e.Type)
		}
	case TypeCSAT:
		if e.Value == nil || *e.Value < 1 || *e.Value > 5 {
			return fmt.Errorf("csat value must be a score from 1 to 5, got %s", fmtValue(e.Value))
		}
	case TypeNPS:
		if e.Value == nil || *e.Value < 0 || *e.Value > 10 {
			return fmt.Errorf("nps value must be a score from 0 to 10, got %s", fmtValue(e.Value))
		}
	case TypeQualityChanged:
		if !oneOf(e.Quality, Qualities) {
			return fmt.Errorf("quality %q must be one of GREEN, YELLOW, RED on quality_changed", e.Quality)
		}
		if e.BusinessNumber == "" {
			return fmt.Errorf("business_number is required for quality_changed events")
		}
	case TypeConversationOpened, TypeEscalated, TypeResolved, TypeAbandoned:
		if e.ConversationID == "" {
			return fmt.Errorf("conversation_id is required for %s events", e.Type)
		}
	}
	if e.Country != "" && len(e.Country) != 2 {
		return fmt.Errorf("country %q is not an ISO 3166-1 alpha-2 code", e.Country)
	}
	if e.Value != nil && (*e.Value != *e.Value) {
		return fmt.Errorf("value is not a number")
	}
	return nil
}

func fmtValue(v *float64) string {
	if v == nil {
		return "nothing"
	}
	return fmt.Sprintf("%g", *v)
}
