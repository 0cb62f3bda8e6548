// Package demo generates a deterministic, realistic history of WhatsApp Business events
// (SPEC section 1) for the demo store, so every KPI of SPEC section 2 and every prebuilt
// dashboard has something to show.
//
// # Knobs
//
//   - Config.Events: approximate number of events (±10 %; default 400 000). It sets the base
//     volume D (entities per average day) through measured events-per-entity constants.
//   - Config.Days: history length (default 90). The history starts at the UTC midnight
//     Days days before End's UTC day, so timestamps lie in [End − Days − 1 day, End].
//   - Config.Seed: the same Config gives a byte-identical event sequence.
//   - Config.End: nothing later is emitted (default time.Now()).
//
// Tunables that are not in Config live in model.go: campaigns and their rates, blasts,
// countries (failure, offline and read behaviour, prices), segments, agents, the diurnal
// and weekly curve, and in generate.go the feed imperfection shares.
//
// # What it simulates
//
// Three business numbers: the shop's marketing number (106540352242922), the care line
// (108223519471603) and the notifications number (112907716304581). A growing population
// of pseudonymous contacts ("c_" + 16 hex digits), each with a stable country (IT, DE, ES,
// FR, GB, NL, BR, IN, MX) and segment (new_lead, repeat_customer, inactive, vip).
//
//   - Broadcast campaigns sent in bursts of a few hours (spring_sale_v2, winback_inactive,
//     vip_early_access, back_in_stock, summer_preview, flash_sale_blast, and an absolute
//     weekly_newsletter every Thursday), plus continuous triggered ones (cart_reminder,
//     welcome_series after each opt-in) and transactional traffic with sender "system"
//     (order_notifications / order_update, login_security / otp_login). spring_sale_v2,
//     summer_preview and cart_reminder are A/B tests in which variant_b is read about 3–4
//     points and clicked about 4 points more than control.
//   - Every sent carries the message's dimensions, price (EUR, by category and country;
//     authentication_international for BR, IN, MX), pricing_type and message_type.
//     Statuses carry only event_id, ts, type, message_id (and error_code): delivered
//     (~95 %, slower where phones are offline more), read (by category, segment, country,
//     variant; later at night; 4 % without a delivered), failed with 131026, 131049, 131050,
//     130472, 131000 and, for agents writing outside the 24 h window, 131047; rarely a
//     message is both delivered and failed.
//   - Engagement: clicks, replies (with reply_to, without it inside 24 h, or a day later),
//     some of which open a campaign conversation, conversions worth 10–300 EUR (reply_to on
//     half; within 24 h, 1–7 days, or beyond 7 days) and organic, unattributable ones;
//     blocks, opt-outs (half after a "STOP" reply), reports, opt-ins.
//   - Conversations opened by customers (care line, or click-to-WhatsApp ads on the shop
//     number with pricing free_entry_point), campaigns, bots and agents: bot answers within
//     seconds, escalation to one of six agents (~30 %), first responses of minutes (slower at
//     peaks, nights and weekends), bot or agent resolution, abandonment at a flow step
//     (choose_product, address, payment, identity_check, waiting_for_agent), unanswered
//     turns, CSAT (agents differ) and NPS surveys.
//   - Quality: every number starts GREEN; the care line wobbles to YELLOW for two days.
//   - The block-rate spike: 10 days before End's UTC day, flash_sale_blast hits every
//     segment from the shop number at 09:00 UTC; the day's block rate reaches 5–8 %
//     (baseline ~0.3 %), with opt-outs and reports; its template then the number go YELLOW,
//     RED for a few hours, YELLOW, and back to GREEN five days later. The last hours before
//     End are calm.
//   - Shapes: business-local diurnal curve (peaks 9–21), quieter weekends, growth ×1.8 over
//     the window.
//   - Feed imperfections: ~2 % of events arrive minutes or hours late (so some statuses come
//     before their sent), ~0.5 % are delivered twice with the same event_id, ~0.1 % of
//     broadcast messages lose their sent event (statuses of an unknown message).
//
// # Determinism and streaming
//
// Generation walks the absolute UTC hours of the window. The entities starting in an hour
// (a message, a conversation, an opt-in) each get their own random stream seeded from
// (Seed, unix hour, stream, index), so an entity does not depend on the ones before it or on
// when the generator runs. The volume normalisation, the growth curve, the campaign
// calendar, the spike and the quality timeline are anchored to End's UTC day: two runs with
// Ends on the same UTC day agree on every event up to the earlier End; Ends on different
// days shift those features (and the per-hour volumes) with them.
//
// Events are emitted in arrival order, hour by hour: follow-ups wait in a ring of 256 hourly
// buckets, so memory depends on the traffic rate, not on the history length. Follow-ups
// later than End are not emitted; events that happened before End but arrive after it are
// emitted at the end.
package demo
