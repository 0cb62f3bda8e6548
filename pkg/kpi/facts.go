package kpi

import (
	"fmt"
	"strings"
)

// The fact tables are derived from the deduplicated events (table ev: SPEC columns plus
// arr, the arrival rank) by the statements below, in order, inside one schema per store
// version ({g}). They settle SPEC section 5 once, so every metric is a plain aggregate.
// Each is stored in time order, so a time range reads only its own row groups. The steps'
// intermediate tables ({t}: msg, st, credit, evt_t, evt_dim, conv_op) live elsewhere: a
// full build writes them to a scratch database deleted after it (engine.go, buildFile), so
// the facts file holds only what queries and increments read; an increment, to its own
// scratch schema.

// messageDims are the dimensions an event inherits from the message it is about or is
// credited to, when it lacks them (SPEC section 5, "Dimensions of an event").
var messageDims = []string{"campaign", "template", "category", "variant", "segment", "business_number", "pricing_type", "country"}

// otherDims are the remaining stored dimensions: taken from the row itself.
var otherDims = []string{"agent_id", "sender", "message_type", "currency", "error_code", "step"}

func inherit(own, from string) string {
	parts := make([]string, 0, len(messageDims))
	for _, d := range messageDims {
		parts = append(parts, fmt.Sprintf("coalesce(%s.%s, %s.%s) AS %s", own, d, from, d, d))
	}
	return strings.Join(parts, ", ")
}

func own(alias string, dims []string) string {
	parts := make([]string, 0, len(dims))
	for _, d := range dims {
		parts = append(parts, alias+"."+d)
	}
	return strings.Join(parts, ", ")
}

// creditedTypes are the event types credited to a message (SPEC section 5, "Crediting"),
// explicitly (explicitCredit) or by last touch.
const creditedTypes = "('received', 'clicked', 'converted', 'blocked', 'opted_out', 'reported')"

// aboutTypes are the credited types whose message_id, too, names the message they answer.
const aboutTypes = "('blocked', 'opted_out', 'reported')"

// explicitCredit is the message an event of creditedTypes names as the one it answers: its
// reply_to, and for aboutTypes also the message they are about. NULL: the event is
// credited by last touch. Increments rely on it too (incremental.go, inc_wd and inc_cm).
const explicitCredit = "coalesce(reply_to, CASE WHEN type IN " + aboutTypes + " THEN message_id END)"

func factStatements() []string {
	return []string{
		// msg: one row per message; its first sent row in arrival order gives the send time
		// and dimensions. Repeated sent rows are rare: they are found by the message id's
		// hash (mh), then confirmed by the id, instead of a window over every sent row,
		// which at 100M events spills more than the engine's cap (buildstep.go).
		`CREATE TABLE {t}.msg AS
		WITH s AS NOT MATERIALIZED (SELECT * FROM {g}.ev WHERE type = 'sent' AND message_id IS NOT NULL),
		dh AS (SELECT mh FROM s GROUP BY mh HAVING count(*) > 1),
		d AS (SELECT message_id, min(arr) AS keep FROM s WHERE mh IN (SELECT mh FROM dh) GROUP BY message_id HAVING count(*) > 1)
		SELECT ev.message_id, ev.ts AS send_ts, ev.contact_id, ev.conversation_id, ev.value AS price,
		       ` + own("ev", messageDims) + `, ` + own("ev", []string{"agent_id", "sender", "message_type", "currency"}) + `
		FROM s AS ev LEFT JOIN d ON d.message_id = ev.message_id
		WHERE d.keep IS NULL OR ev.arr = d.keep`,

		// st: statuses per message, repeated statuses counted once.
		`CREATE TABLE {t}.st AS
		SELECT message_id,
		       min(ts) FILTER (WHERE type IN ('delivered', 'read')) AS deliv_ts,
		       min(ts) FILTER (WHERE type = 'read') AS read_ts,
		       bool_or(type = 'failed') AS is_failed,
		       arg_min(error_code, arr) FILTER (WHERE type = 'failed') AS error_code
		FROM {g}.ev WHERE type IN ('delivered', 'read', 'failed') AND message_id IS NOT NULL
		GROUP BY message_id`,

		// credit: the message each reply, click, conversion, block, opt-out and report is
		// credited to. An explicit reply_to (for blocks, opt-outs and reports also the
		// message_id they are about) credits that message if it is stored (whatever the
		// time); otherwise the latest campaign message to the contact within the window
		// (24 h; 7 days for conversions), both ends included.
		`CREATE TABLE {t}.credit AS
		WITH x AS (
			SELECT event_id, type, ts, contact_id,
			       ` + explicitCredit + ` AS reply_to,
			       CASE WHEN type = 'converted' THEN INTERVAL 7 DAY ELSE INTERVAL 24 HOUR END AS win
			FROM {g}.ev
			WHERE type IN ` + creditedTypes + `
		),
		cand AS (
			SELECT contact_id, send_ts, message_id FROM {t}.msg
			WHERE sender = 'campaign' AND contact_id IS NOT NULL
		),
		lt AS (
			SELECT x.event_id, cand.message_id, cand.send_ts
			FROM x ASOF JOIN cand ON x.contact_id = cand.contact_id AND x.ts >= cand.send_ts
			WHERE x.reply_to IS NULL
		)
		SELECT x.event_id, x.type, x.ts,
		       CASE WHEN x.reply_to IS NOT NULL THEN m.message_id
		            WHEN lt.send_ts >= x.ts - x.win THEN lt.message_id END AS credited
		FROM x
		LEFT JOIN {t}.msg AS m ON m.message_id = x.reply_to -- a plain equi-join: an extra predicate here makes DuckDB nest loops
		LEFT JOIN lt ON lt.event_id = x.event_id`,

		// f_msg: message outcomes. Delivered means a delivered/read status or a credited
		// click or reply.
		`CREATE TABLE {g}.f_msg AS
		WITH cr AS (
			SELECT c.credited AS message_id,
			       count(*) FILTER (WHERE c.type = 'clicked') AS n_click,
			       min(c.ts) FILTER (WHERE c.type = 'clicked') AS click_ts,
			       count(*) FILTER (WHERE c.type = 'received') AS n_reply,
			       min(c.ts) FILTER (WHERE c.type = 'received') AS reply_ts,
			       count(*) FILTER (WHERE c.type = 'converted') AS n_conv,
			       coalesce(sum(TRY_CAST(e.value AS DECIMAL(38,6))) FILTER (WHERE c.type = 'converted'), 0) AS revenue
			FROM {t}.credit AS c JOIN {g}.ev AS e USING (event_id)
			WHERE c.credited IS NOT NULL AND c.type IN ('clicked', 'received', 'converted')
			GROUP BY 1
		)
		, r AS (
		SELECT m.*,
		       st.deliv_ts, st.read_ts,
		       coalesce(st.is_failed, false) AS is_failed,
		       CAST(st.error_code AS VARCHAR) AS error_code,
		       CAST(NULL AS VARCHAR) AS step,
		       coalesce(cr.n_click, 0) > 0 AS is_clicked,
		       coalesce(cr.n_reply, 0) > 0 AS is_replied,
		       coalesce(cr.n_conv, 0) AS n_conv,
		       coalesce(cr.revenue, 0) AS revenue,
		       (st.deliv_ts IS NOT NULL OR coalesce(cr.n_click, 0) > 0 OR coalesce(cr.n_reply, 0) > 0) AS is_delivered,
		       st.read_ts IS NOT NULL AS is_read,
		       coalesce(st.deliv_ts, least(cr.click_ts, cr.reply_ts)) AS first_deliv_ts,
		       -- The key's hashes and the row's: increments find the rows they replace by kh
		       -- and kx (128 bits) and tell the changed ones by rh (incremental.go).
		       hash(m.message_id) AS kh, hash(m.message_id, 'kx') AS kx
		FROM {t}.msg AS m
		LEFT JOIN {t}.st AS st USING (message_id)
		LEFT JOIN cr USING (message_id)
		)
		SELECT r.*, hash(r) AS rh FROM r
		ORDER BY send_ts`,

		// recv: each contact's first inbound message (new vs returning contacts).
		`CREATE TABLE {g}.recv AS
		SELECT contact_id, min(ts) AS first_recv_ts FROM {g}.ev
		WHERE type = 'received' AND contact_id IS NOT NULL GROUP BY contact_id`,

		// f_evt: every event at its own time, with message dimensions it lacks taken from the
		// message it is about (statuses) or credited to; plus one _delivery row per message
		// at its earliest delivery (also for statuses whose sent is not stored). Built in
		// narrow steps, each join in hash partitions ({part:key}, buildstep.go): one chain of
		// joins over the wide event rows outgrows memory and the spill cap at 100M events.
		// evt_t: the message each event takes dimensions from (credited, else its own).
		`CREATE TABLE {t}.evt_t AS
		SELECT e.event_id, e.contact_id,
		       CASE WHEN c.event_id IS NOT NULL THEN c.credited ELSE e.message_id END AS tm
		FROM {g}.ev AS e LEFT JOIN {t}.credit AS c ON c.event_id = e.event_id
		-- Message rows and statuses live in f_msg; here they would only add empty groups.
		WHERE e.type NOT IN ('sent', 'delivered', 'read', 'failed')`,
		// evt_dim: per event, its message's dimensions and its contact's first inbound message.
		`CREATE TABLE {t}.evt_dim AS
		SELECT t.event_id, ` + own("m", messageDims) + `, recv.first_recv_ts
		FROM {t}.evt_t AS t
		LEFT JOIN (SELECT * FROM {t}.msg WHERE {part:message_id}) AS m ON m.message_id = t.tm
		LEFT JOIN {g}.recv AS recv ON recv.contact_id = t.contact_id
		-- Events without a message spread by their own id: one partition holding all of
		-- them (hash(NULL)) outgrows memory.
		WHERE {part:coalesce(t.tm, t.event_id)}`,
		`DROP TABLE {t}.evt_t`,
		`CREATE TABLE {g}.f_evt AS
		SELECT r.*, hash(r) AS rh FROM (
		SELECT e.event_id, CAST(NULL AS VARCHAR) AS message_id, e.type, e.ts, e.contact_id, e.conversation_id, e.value,
		       ` + inherit("e", "m") + `,
		       e.agent_id, e.sender, e.message_type, e.currency, CAST(e.error_code AS VARCHAR) AS error_code, e.step,
		       -- Read on received rows only (new and returning contacts, retention); kept off
		       -- the others so an earlier first inbound message changes only those rows.
		       CASE WHEN e.type = 'received' THEN m.first_recv_ts END AS first_recv_ts,
		       -- The key's hashes (event id; message id for _delivery rows) and, outside, the
		       -- row's: as in f_msg.
		       hash(e.event_id) AS kh, hash(e.event_id, 'kx') AS kx
		FROM (SELECT * FROM {g}.ev WHERE {part:event_id}) AS e
		JOIN (SELECT * FROM {t}.evt_dim WHERE {part:event_id}) AS m ON m.event_id = e.event_id
		UNION ALL
		-- f_msg's first delivery is the status's when there is one.
		SELECT NULL AS event_id, fm.message_id, '_delivery' AS type, fm.first_deliv_ts AS ts,
		       fm.contact_id, fm.conversation_id, NULL AS value,
		       ` + own("fm", messageDims) + `,
		       fm.agent_id, fm.sender, fm.message_type, fm.currency, NULL AS error_code, NULL AS step,
		       NULL AS first_recv_ts, hash(fm.message_id, 'd') AS kh, hash(fm.message_id, 'dx') AS kx
		FROM {g}.f_msg AS fm WHERE fm.first_deliv_ts IS NOT NULL AND {part:fm.message_id}
		UNION ALL
		SELECT NULL, st.message_id, '_delivery', st.deliv_ts,
		       NULL, NULL, NULL, ` + strings.TrimSuffix(strings.Repeat("NULL, ", len(messageDims)), ", ") + `,
		       NULL, NULL, NULL, NULL, NULL, NULL, NULL, hash(st.message_id, 'd'), hash(st.message_id, 'dx')
		FROM {t}.st AS st
		WHERE st.deliv_ts IS NOT NULL AND {part:st.message_id}
		  AND NOT EXISTS (SELECT 1 FROM {t}.msg AS m WHERE m.message_id = st.message_id)
		) AS r
		ORDER BY ts`,
		`DROP TABLE {t}.evt_dim`,

		// f_conv: one row per conversation at its opening time with the opening row's
		// dimensions. The agent of the first agent message answers for response times, the
		// agent of the first resolved row for resolution.
		// conv_op: each conversation's opening row (a table, not a CTE used three times:
		// DuckDB holds such a CTE's rows while the joins run, past memory at 100M events).
		// It takes the dimensions it lacks from the message it names, here, in a join of
		// its own.
		`CREATE TABLE {t}.conv_op AS
		WITH o AS (
			SELECT * FROM {g}.ev WHERE type = 'conversation_opened'
			QUALIFY row_number() OVER (PARTITION BY conversation_id ORDER BY ts, arr) = 1
		)
		SELECT o.conversation_id, o.ts, o.contact_id, ` + inherit("o", "m") + `,
		       o.agent_id, o.sender, o.message_type, o.currency
		FROM o LEFT JOIN {t}.msg AS m ON m.message_id = coalesce(o.reply_to, o.message_id)`,
		`CREATE TABLE {g}.f_conv AS
		WITH op AS NOT MATERIALIZED (SELECT * FROM {t}.conv_op),
		agent_msg AS (
			SELECT m.conversation_id, m.send_ts, m.agent_id
			FROM {t}.msg AS m JOIN op ON op.conversation_id = m.conversation_id
			WHERE m.sender = 'agent' AND m.send_ts >= op.ts
			QUALIFY row_number() OVER (PARTITION BY m.conversation_id ORDER BY m.send_ts, m.message_id) = 1
		),
		esc AS (
			SELECT conversation_id, ts, agent_id FROM {g}.ev WHERE type = 'escalated'
		),
		frt AS (
			SELECT a.conversation_id, a.agent_id AS frt_agent,
			       epoch(a.send_ts) - epoch(greatest(op.ts, coalesce(max(esc.ts), op.ts))) AS frt_s
			FROM agent_msg AS a JOIN op USING (conversation_id)
			LEFT JOIN esc ON esc.conversation_id = a.conversation_id AND esc.ts <= a.send_ts
			GROUP BY a.conversation_id, a.agent_id, a.send_ts, op.ts
		),
		res AS (
			SELECT conversation_id, ts AS res_ts, sender AS res_sender, agent_id AS res_agent FROM {g}.ev
			WHERE type = 'resolved'
			QUALIFY row_number() OVER (PARTITION BY conversation_id ORDER BY ts, arr) = 1
		),
		flags AS (
			SELECT conversation_id,
			       bool_or(type = 'escalated') AS escalated,
			       bool_or(type = 'abandoned') AS abandoned
			FROM {g}.ev WHERE type IN ('escalated', 'abandoned') AND conversation_id IS NOT NULL
			GROUP BY conversation_id
		),
		r AS (
		SELECT op.conversation_id, op.ts AS opened_ts, op.contact_id,
		       ` + own("op", messageDims) + `,
		       coalesce(op.agent_id, frt.frt_agent, res.res_agent) AS agent_id,
		       op.sender, op.message_type, op.currency, CAST(NULL AS VARCHAR) AS error_code, CAST(NULL AS VARCHAR) AS step,
		       frt.frt_s, frt.frt_agent,
		       epoch(res.res_ts) - epoch(op.ts) AS res_s, res.res_agent,
		       coalesce(flags.escalated, false) AS escalated,
		       coalesce(flags.abandoned, false) AS abandoned,
		       (res.res_sender = 'bot' AND NOT coalesce(flags.escalated, false)) AS self_resolved,
		       hash(op.conversation_id) AS kh, hash(op.conversation_id, 'kx') AS kx -- as in f_msg
		FROM op
		LEFT JOIN frt ON frt.conversation_id = op.conversation_id
		LEFT JOIN res ON res.conversation_id = op.conversation_id
		LEFT JOIN flags ON flags.conversation_id = op.conversation_id
		)
		SELECT r.*, hash(r) AS rh FROM r
		ORDER BY opened_ts`,
		`DROP TABLE {t}.conv_op`,

		// f_turn: customer turns. Consecutive inbound messages of a conversation form one
		// turn from the first; the next bot or agent message answers it (campaign messages
		// neither answer nor split a turn). agent_id is the agent who answered (none for
		// the bot).
		`CREATE TABLE {g}.f_turn AS
		WITH seq AS (
			SELECT conversation_id, ts, 0 AS k, arr FROM {g}.ev
			WHERE type = 'received' AND conversation_id IS NOT NULL
			UNION ALL
			SELECT conversation_id, send_ts, 1 AS k, 0 FROM {t}.msg
			WHERE sender IN ('agent', 'bot') AND conversation_id IS NOT NULL
		),
		o AS (
			SELECT *, lag(k) OVER (PARTITION BY conversation_id ORDER BY ts, k, arr) AS prev_k FROM seq
		),
		starts AS (SELECT conversation_id, ts FROM o WHERE k = 0 AND (prev_k IS NULL OR prev_k = 1)),
		answers AS (
			SELECT conversation_id, send_ts AS ts, CASE WHEN sender = 'agent' THEN agent_id END AS agent_id
			FROM {t}.msg WHERE sender IN ('agent', 'bot') AND conversation_id IS NOT NULL
		),
		t AS (
			SELECT s.conversation_id, s.ts AS start_ts, a.ts AS answer_ts, a.agent_id AS answer_agent
			FROM starts AS s ASOF LEFT JOIN answers AS a
			  ON s.conversation_id = a.conversation_id AND a.ts >= s.ts
		),
		r AS (
		SELECT t.start_ts, t.conversation_id, c.contact_id,
		       ` + own("c", messageDims) + `,
		       t.answer_agent AS agent_id, c.sender, c.message_type, c.currency,
		       CAST(NULL AS VARCHAR) AS error_code, CAST(NULL AS VARCHAR) AS step,
		       epoch(t.answer_ts) - epoch(t.start_ts) AS resp_s,
		       hash(t.conversation_id) AS kh, hash(t.conversation_id, 'kx') AS kx -- as in f_msg
		FROM t LEFT JOIN {g}.f_conv AS c ON c.conversation_id = t.conversation_id
		)
		SELECT r.*, hash(r) AS rh FROM r
		ORDER BY start_ts`,

		// f_quality: rating changes; rows with a template are template ratings.
		`CREATE TABLE {g}.f_quality AS ` + qualitySelect("{g}.ev"),
	}
}

// qualitySelect gives the quality facts of the events in rel.
func qualitySelect(rel string) string {
	return `SELECT ts, business_number, template, quality,
	       CASE quality WHEN 'GREEN' THEN 0 WHEN 'YELLOW' THEN 1 WHEN 'RED' THEN 2 END AS state, arr
	FROM ` + rel + ` WHERE type = 'quality_changed'`
}

// factTime is each fact's time column.
var factTime = map[Fact]string{
	FactMessage:      "send_ts",
	FactEvent:        "ts",
	FactConversation: "opened_ts",
	FactTurn:         "start_ts",
	FactQuality:      "ts",
}
