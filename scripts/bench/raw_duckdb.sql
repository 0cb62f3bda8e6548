-- The overview dashboard's KPIs (dashboards/overview.json, variables at All) written as a
-- user would in DuckDB SQL over a raw `events` table in SPEC columns, duplicates included,
-- following SPEC sections 2 and 5 exactly:
--   * messages are distinct message_id of `sent` rows (a message's sent rows are copies of
--     one event); statuses are joined to their message, repeated statuses count once;
--   * a message is delivered with a delivered/read status or a credited click or reply;
--   * replies, clicks and conversions are credited to reply_to when it names a stored
--     message, else to the latest `campaign` message to the contact within 24 h (7 days for
--     conversions), both ends included; an unknown reply_to credits nothing;
--   * event counts and sums deduplicate by event_id;
--   * block and opt-out rates divide events in the range by messages whose earliest
--     delivery (status, else credited click/reply) is in the range.
-- Time filters are applied where they are exact: a message sent in [$1, $2) can only be
-- credited by last touch from events at or after $1, whose candidates were sent after
-- $1 - 7 days. Message outcomes include what happened after $2 (SPEC: newest buckets move).
--
-- Result columns, checked against the engine by scripts/bench/compare: `time` (bucket
-- start, UTC) for time series, then group columns named by their dimension, then one column
-- per metric named by its id. $1 and $2 are the range's ends (TIMESTAMPTZ literals).
-- Used by scripts/bench/compare (scripts/bench.sh) and BenchmarkRawDuckDB (pkg/kpi).

-- name: sent
-- "Sent" stat (a time series reduced by Grafana), hourly buckets.
SELECT date_trunc('hour', send_ts AT TIME ZONE 'UTC') AS time, count(*) AS sent
FROM (SELECT message_id, min(ts) AS send_ts FROM events
      WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2 GROUP BY message_id)
GROUP BY 1 ORDER BY 1;

-- name: delivery_rate
WITH msg AS (
  SELECT DISTINCT message_id FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2
),
st AS (
  SELECT DISTINCT message_id FROM events
  WHERE type IN ('delivered', 'read') AND message_id IN (SELECT message_id FROM msg)
),
touched AS ( -- clicks and replies credited to a message of the range
  SELECT reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked') AND reply_to IN (SELECT message_id FROM msg)
  UNION
  SELECT c.message_id
  FROM (SELECT contact_id, ts FROM events
        WHERE type IN ('received', 'clicked') AND reply_to IS NULL AND contact_id IS NOT NULL AND ts >= $1) AS e
  ASOF JOIN (SELECT contact_id, ts, message_id FROM events
             WHERE type = 'sent' AND sender = 'campaign' AND ts >= $1 - INTERVAL 1 DAY) AS c
    ON e.contact_id = c.contact_id AND e.ts >= c.ts
  WHERE c.ts >= e.ts - INTERVAL 24 HOUR AND c.message_id IN (SELECT message_id FROM msg)
)
SELECT count(*) FILTER (WHERE message_id IN (SELECT message_id FROM st UNION SELECT message_id FROM touched))
       / nullif(count(*), 0) AS delivery_rate
FROM msg;

-- name: read_rate
WITH msg AS (
  SELECT DISTINCT message_id FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2
),
st AS (
  SELECT message_id, bool_or(type = 'read') AS r FROM events
  WHERE type IN ('delivered', 'read') AND message_id IN (SELECT message_id FROM msg)
  GROUP BY message_id
),
touched AS (
  SELECT reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked') AND reply_to IN (SELECT message_id FROM msg)
  UNION
  SELECT c.message_id
  FROM (SELECT contact_id, ts FROM events
        WHERE type IN ('received', 'clicked') AND reply_to IS NULL AND contact_id IS NOT NULL AND ts >= $1) AS e
  ASOF JOIN (SELECT contact_id, ts, message_id FROM events
             WHERE type = 'sent' AND sender = 'campaign' AND ts >= $1 - INTERVAL 1 DAY) AS c
    ON e.contact_id = c.contact_id AND e.ts >= c.ts
  WHERE c.ts >= e.ts - INTERVAL 24 HOUR AND c.message_id IN (SELECT message_id FROM msg)
),
m AS (
  SELECT st.r IS TRUE AS r, st.message_id IS NOT NULL OR t.message_id IS NOT NULL AS d
  FROM msg LEFT JOIN st USING (message_id) LEFT JOIN touched AS t USING (message_id)
)
SELECT count(*) FILTER (WHERE r) / nullif(count(*) FILTER (WHERE d), 0) AS read_rate FROM m;

-- name: click_rate
WITH msg AS (
  SELECT DISTINCT message_id FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2
),
st AS (
  SELECT DISTINCT message_id FROM events
  WHERE type IN ('delivered', 'read') AND message_id IN (SELECT message_id FROM msg)
),
cr AS ( -- clicks and replies credited to a message of the range
  SELECT type, reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked') AND reply_to IN (SELECT message_id FROM msg)
  UNION ALL
  SELECT e.type, c.message_id
  FROM (SELECT type, contact_id, ts FROM events
        WHERE type IN ('received', 'clicked') AND reply_to IS NULL AND contact_id IS NOT NULL AND ts >= $1) AS e
  ASOF JOIN (SELECT contact_id, ts, message_id FROM events
             WHERE type = 'sent' AND sender = 'campaign' AND ts >= $1 - INTERVAL 1 DAY) AS c
    ON e.contact_id = c.contact_id AND e.ts >= c.ts
  WHERE c.ts >= e.ts - INTERVAL 24 HOUR AND c.message_id IN (SELECT message_id FROM msg)
),
eng AS (SELECT message_id, bool_or(type = 'clicked') AS clicked FROM cr GROUP BY message_id),
m AS (
  SELECT eng.clicked IS TRUE AS clicked, st.message_id IS NOT NULL OR eng.message_id IS NOT NULL AS d
  FROM msg LEFT JOIN st USING (message_id) LEFT JOIN eng USING (message_id)
)
SELECT count(*) FILTER (WHERE clicked) / nullif(count(*) FILTER (WHERE d), 0) AS click_rate FROM m;

-- name: conversion_rate
WITH msg AS (
  SELECT DISTINCT message_id FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2
),
st AS (
  SELECT DISTINCT message_id FROM events
  WHERE type IN ('delivered', 'read') AND message_id IN (SELECT message_id FROM msg)
),
cr AS ( -- replies, clicks and conversions credited to a message of the range
  SELECT type, reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked', 'converted') AND reply_to IN (SELECT message_id FROM msg)
  UNION ALL
  SELECT e.type, c.message_id
  FROM (SELECT type, contact_id, ts FROM events
        WHERE type IN ('received', 'clicked', 'converted') AND reply_to IS NULL AND contact_id IS NOT NULL AND ts >= $1) AS e
  ASOF JOIN (SELECT contact_id, ts, message_id FROM events
             WHERE type = 'sent' AND sender = 'campaign' AND ts >= $1 - INTERVAL 7 DAY) AS c
    ON e.contact_id = c.contact_id AND e.ts >= c.ts
  WHERE c.ts >= e.ts - CASE WHEN e.type = 'converted' THEN INTERVAL 7 DAY ELSE INTERVAL 24 HOUR END
    AND c.message_id IN (SELECT message_id FROM msg)
),
eng AS (
  SELECT message_id, bool_or(type IN ('clicked', 'received')) AS touched, bool_or(type = 'converted') AS converted
  FROM cr GROUP BY message_id
),
m AS (
  SELECT eng.converted IS TRUE AS converted, st.message_id IS NOT NULL OR eng.touched IS TRUE AS d
  FROM msg LEFT JOIN st USING (message_id) LEFT JOIN eng USING (message_id)
)
SELECT count(*) FILTER (WHERE converted AND d) / nullif(count(*) FILTER (WHERE d), 0) AS conversion_rate FROM m;

-- name: revenue
-- "Revenue" stat: attributed revenue by the send time of the credited message, hourly.
WITH msg AS (
  SELECT message_id, min(ts) AS send_ts FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2 GROUP BY message_id
),
conv AS ( -- conversions credited to a message of the range, each event once
  SELECT DISTINCT event_id, value, reply_to AS message_id FROM events
  WHERE type = 'converted' AND reply_to IN (SELECT message_id FROM msg)
  UNION
  SELECT DISTINCT e.event_id, e.value, c.message_id
  FROM (SELECT event_id, value, contact_id, ts FROM events
        WHERE type = 'converted' AND reply_to IS NULL AND contact_id IS NOT NULL AND ts >= $1) AS e
  ASOF JOIN (SELECT contact_id, ts, message_id FROM events
             WHERE type = 'sent' AND sender = 'campaign' AND ts >= $1 - INTERVAL 7 DAY) AS c
    ON e.contact_id = c.contact_id AND e.ts >= c.ts
  WHERE c.ts >= e.ts - INTERVAL 7 DAY AND c.message_id IN (SELECT message_id FROM msg)
)
SELECT date_trunc('hour', msg.send_ts AT TIME ZONE 'UTC') AS time, coalesce(sum(conv.value), 0) AS revenue
FROM msg LEFT JOIN conv USING (message_id)
GROUP BY 1 ORDER BY 1;

-- name: block_rate
WITH sent AS (
  SELECT DISTINCT message_id, contact_id, ts AS send_ts, sender FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL
),
sd AS ( -- earliest delivered/read status of every message (also those whose sent is missing)
  SELECT message_id, min(ts) AS ts FROM events
  WHERE type IN ('delivered', 'read') AND message_id IS NOT NULL GROUP BY message_id
),
cd AS ( -- earliest credited click or reply of every message
  SELECT message_id, min(ts) AS ts FROM (
    SELECT ts, reply_to AS message_id FROM events
    WHERE type IN ('received', 'clicked') AND reply_to IN (SELECT message_id FROM sent)
    UNION ALL
    SELECT e.ts, c.message_id
    FROM (SELECT contact_id, ts FROM events
          WHERE type IN ('received', 'clicked') AND reply_to IS NULL AND contact_id IS NOT NULL) AS e
    ASOF JOIN (SELECT contact_id, send_ts, message_id FROM sent WHERE sender = 'campaign') AS c
      ON e.contact_id = c.contact_id AND e.ts >= c.send_ts
    WHERE c.send_ts >= e.ts - INTERVAL 24 HOUR
  ) GROUP BY message_id
),
deliv AS (SELECT coalesce(sd.ts, cd.ts) AS ts FROM sd FULL JOIN cd USING (message_id))
SELECT (SELECT count(DISTINCT event_id) FROM events WHERE type = 'blocked' AND ts >= $1 AND ts < $2)
       / nullif((SELECT count(*) FROM deliv WHERE ts >= $1 AND ts < $2), 0) AS block_rate;

-- name: opt_out_rate
WITH sent AS (
  SELECT DISTINCT message_id, contact_id, ts AS send_ts, sender FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL
),
sd AS (
  SELECT message_id, min(ts) AS ts FROM events
  WHERE type IN ('delivered', 'read') AND message_id IS NOT NULL GROUP BY message_id
),
cd AS (
  SELECT message_id, min(ts) AS ts FROM (
    SELECT ts, reply_to AS message_id FROM events
    WHERE type IN ('received', 'clicked') AND reply_to IN (SELECT message_id FROM sent)
    UNION ALL
    SELECT e.ts, c.message_id
    FROM (SELECT contact_id, ts FROM events
          WHERE type IN ('received', 'clicked') AND reply_to IS NULL AND contact_id IS NOT NULL) AS e
    ASOF JOIN (SELECT contact_id, send_ts, message_id FROM sent WHERE sender = 'campaign') AS c
      ON e.contact_id = c.contact_id AND e.ts >= c.send_ts
    WHERE c.send_ts >= e.ts - INTERVAL 24 HOUR
  ) GROUP BY message_id
),
deliv AS (SELECT coalesce(sd.ts, cd.ts) AS ts FROM sd FULL JOIN cd USING (message_id))
SELECT (SELECT count(DISTINCT event_id) FROM events WHERE type = 'opted_out' AND ts >= $1 AND ts < $2)
       / nullif((SELECT count(*) FROM deliv WHERE ts >= $1 AND ts < $2), 0) AS opt_out_rate;

-- name: conversations
-- "Conversations" stat: distinct conversations at their (first) opening time, hourly.
SELECT date_trunc('hour', opened AT TIME ZONE 'UTC') AS time, count(*) AS conversations
FROM (SELECT conversation_id, min(ts) AS opened FROM events WHERE type = 'conversation_opened' GROUP BY conversation_id)
WHERE opened >= $1 AND opened < $2
GROUP BY 1 ORDER BY 1;

-- name: first_response_p50
-- First agent message minus the later of the opening and the last escalation before it;
-- conversations opened in the range, without an agent message left out.
WITH op AS (
  SELECT conversation_id, min(ts) AS opened FROM events WHERE type = 'conversation_opened'
  GROUP BY conversation_id HAVING min(ts) >= $1 AND min(ts) < $2
),
am AS (
  SELECT op.conversation_id, op.opened, min(s.ts) AS answered
  FROM op JOIN events AS s ON s.conversation_id = op.conversation_id
  WHERE s.type = 'sent' AND s.sender = 'agent' AND s.message_id IS NOT NULL AND s.ts >= op.opened
  GROUP BY op.conversation_id, op.opened
),
frt AS (
  SELECT epoch(am.answered) - epoch(greatest(am.opened, coalesce(max(es.ts), am.opened))) AS s
  FROM am LEFT JOIN events AS es
    ON es.conversation_id = am.conversation_id AND es.type = 'escalated' AND es.ts <= am.answered
  GROUP BY am.conversation_id, am.opened, am.answered
)
SELECT quantile_cont(s, 0.5) AS first_response_time_p50 FROM frt;

-- name: status_daily
-- "Messages by status": sent, delivered, read, failed by the day (UTC) of sending.
WITH msg AS (
  SELECT message_id, min(ts) AS send_ts FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2 GROUP BY message_id
),
st AS (
  SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r, bool_or(type = 'failed') AS f
  FROM events WHERE type IN ('delivered', 'read', 'failed') AND message_id IN (SELECT message_id FROM msg)
  GROUP BY message_id
),
touched AS (
  SELECT reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked') AND reply_to IN (SELECT message_id FROM msg)
  UNION
  SELECT c.message_id
  FROM (SELECT contact_id, ts FROM events
        WHERE type IN ('received', 'clicked') AND reply_to IS NULL AND contact_id IS NOT NULL AND ts >= $1) AS e
  ASOF JOIN (SELECT contact_id, ts, message_id FROM events
             WHERE type = 'sent' AND sender = 'campaign' AND ts >= $1 - INTERVAL 1 DAY) AS c
    ON e.contact_id = c.contact_id AND e.ts >= c.ts
  WHERE c.ts >= e.ts - INTERVAL 24 HOUR AND c.message_id IN (SELECT message_id FROM msg)
)
SELECT date_trunc('day', msg.send_ts AT TIME ZONE 'UTC') AS time, count(*) AS sent,
       count(*) FILTER (WHERE st.d OR t.message_id IS NOT NULL) AS delivered,
       count(*) FILTER (WHERE st.r) AS read,
       count(*) FILTER (WHERE st.f) AS failed
FROM msg LEFT JOIN st USING (message_id) LEFT JOIN touched AS t USING (message_id)
GROUP BY 1 ORDER BY 1;

-- name: funnel_daily
-- "Funnel rates (daily)": delivery, read, click, reply and conversion rates by send day.
WITH msg AS (
  SELECT message_id, min(ts) AS send_ts FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2 GROUP BY message_id
),
st AS (
  SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r
  FROM events WHERE type IN ('delivered', 'read') AND message_id IN (SELECT message_id FROM msg)
  GROUP BY message_id
),
cr AS (
  SELECT type, reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked', 'converted') AND reply_to IN (SELECT message_id FROM msg)
  UNION ALL
  SELECT e.type, c.message_id
  FROM (SELECT type, contact_id, ts FROM events
        WHERE type IN ('received', 'clicked', 'converted') AND reply_to IS NULL AND contact_id IS NOT NULL AND ts >= $1) AS e
  ASOF JOIN (SELECT contact_id, ts, message_id FROM events
             WHERE type = 'sent' AND sender = 'campaign' AND ts >= $1 - INTERVAL 7 DAY) AS c
    ON e.contact_id = c.contact_id AND e.ts >= c.ts
  WHERE c.ts >= e.ts - CASE WHEN e.type = 'converted' THEN INTERVAL 7 DAY ELSE INTERVAL 24 HOUR END
    AND c.message_id IN (SELECT message_id FROM msg)
),
eng AS (
  SELECT message_id, bool_or(type = 'clicked') AS clicked, bool_or(type = 'received') AS replied,
         bool_or(type = 'converted') AS converted
  FROM cr GROUP BY message_id
),
m AS (
  SELECT msg.send_ts, coalesce(st.d, false) OR eng.clicked IS TRUE OR eng.replied IS TRUE AS d,
         st.r IS TRUE AS r, eng.clicked IS TRUE AS clicked, eng.replied IS TRUE AS replied, eng.converted IS TRUE AS converted
  FROM msg LEFT JOIN st USING (message_id) LEFT JOIN eng USING (message_id)
)
SELECT date_trunc('day', send_ts AT TIME ZONE 'UTC') AS time,
       count(*) FILTER (WHERE d) / nullif(count(*), 0) AS delivery_rate,
       count(*) FILTER (WHERE r) / nullif(count(*) FILTER (WHERE d), 0) AS read_rate,
       count(*) FILTER (WHERE clicked) / nullif(count(*) FILTER (WHERE d), 0) AS click_rate,
       count(*) FILTER (WHERE replied) / nullif(count(*) FILTER (WHERE d), 0) AS reply_rate,
       count(*) FILTER (WHERE converted AND d) / nullif(count(*) FILTER (WHERE d), 0) AS conversion_rate
FROM m GROUP BY 1 ORDER BY 1;

-- name: campaigns
-- "Campaigns" table: message outcomes by the message's campaign, block rate by the
-- campaign of the block (its own tag, else the message it is about, else last touch 24 h)
-- over deliveries by their message's campaign; top 20 by messages sent.
WITH sent AS (
  SELECT DISTINCT message_id, contact_id, ts AS send_ts, sender, campaign FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL
),
msg AS (SELECT message_id, campaign, send_ts FROM sent WHERE send_ts >= $1 AND send_ts < $2),
st AS (
  SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r
  FROM events WHERE type IN ('delivered', 'read') AND message_id IN (SELECT message_id FROM msg)
  GROUP BY message_id
),
cr AS ( -- replies, clicks and conversions credited to a message of the range
  SELECT event_id, type, value, reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked', 'converted') AND reply_to IN (SELECT message_id FROM msg)
  UNION ALL
  SELECT e.event_id, e.type, e.value, c.message_id
  FROM (SELECT event_id, type, value, contact_id, ts FROM events
        WHERE type IN ('received', 'clicked', 'converted') AND reply_to IS NULL AND contact_id IS NOT NULL AND ts >= $1) AS e
  ASOF JOIN (SELECT contact_id, send_ts, message_id FROM sent WHERE sender = 'campaign' AND send_ts >= $1 - INTERVAL 7 DAY) AS c
    ON e.contact_id = c.contact_id AND e.ts >= c.send_ts
  WHERE c.send_ts >= e.ts - CASE WHEN e.type = 'converted' THEN INTERVAL 7 DAY ELSE INTERVAL 24 HOUR END
    AND c.message_id IN (SELECT message_id FROM msg)
),
eng AS (
  SELECT message_id, bool_or(type = 'clicked') AS clicked, bool_or(type = 'received') AS replied,
         bool_or(type = 'converted') AS converted, sum(value) FILTER (WHERE type = 'converted') AS revenue
  FROM (SELECT DISTINCT event_id, type, value, message_id FROM cr) GROUP BY message_id
),
outcomes AS (
  SELECT msg.campaign, count(*) AS sent,
         count(*) FILTER (WHERE st.d OR eng.clicked OR eng.replied) AS delivered,
         count(*) FILTER (WHERE st.r) AS read,
         count(*) FILTER (WHERE eng.clicked) AS clicked,
         count(*) FILTER (WHERE eng.converted AND (st.d OR eng.clicked OR eng.replied)) AS converted,
         coalesce(sum(eng.revenue), 0) AS revenue
  FROM msg LEFT JOIN st USING (message_id) LEFT JOIN eng USING (message_id)
  GROUP BY msg.campaign
),
sd AS (
  SELECT message_id, min(ts) AS ts FROM events
  WHERE type IN ('delivered', 'read') AND message_id IS NOT NULL GROUP BY message_id
),
cd AS (
  SELECT message_id, min(ts) AS ts FROM (
    SELECT ts, reply_to AS message_id FROM events
    WHERE type IN ('received', 'clicked') AND reply_to IN (SELECT message_id FROM sent)
    UNION ALL
    SELECT e.ts, c.message_id
    FROM (SELECT contact_id, ts FROM events
          WHERE type IN ('received', 'clicked') AND reply_to IS NULL AND contact_id IS NOT NULL) AS e
    ASOF JOIN (SELECT contact_id, send_ts, message_id FROM sent WHERE sender = 'campaign') AS c
      ON e.contact_id = c.contact_id AND e.ts >= c.send_ts
    WHERE c.send_ts >= e.ts - INTERVAL 24 HOUR
  ) GROUP BY message_id
),
deliveries AS (
  SELECT sent.campaign, count(*) AS n
  FROM (SELECT coalesce(sd.message_id, cd.message_id) AS message_id, coalesce(sd.ts, cd.ts) AS ts
        FROM sd FULL JOIN cd USING (message_id)) AS d
  LEFT JOIN sent USING (message_id)
  WHERE d.ts >= $1 AND d.ts < $2
  GROUP BY sent.campaign
),
blk AS (SELECT DISTINCT event_id, contact_id, ts, campaign, coalesce(reply_to, message_id) AS about FROM events
        WHERE type = 'blocked' AND ts >= $1 AND ts < $2),
blocks AS (
  SELECT campaign, count(*) AS n FROM (
    SELECT coalesce(b.campaign, s.campaign) AS campaign
    FROM blk AS b LEFT JOIN sent AS s ON s.message_id = b.about WHERE b.about IS NOT NULL
    UNION ALL
    SELECT coalesce(b.campaign, CASE WHEN c.send_ts >= b.ts - INTERVAL 24 HOUR THEN c.campaign END)
    FROM (SELECT * FROM blk WHERE about IS NULL) AS b
    ASOF LEFT JOIN (SELECT contact_id, send_ts, campaign FROM sent WHERE sender = 'campaign') AS c
      ON b.contact_id = c.contact_id AND b.ts >= c.send_ts
  ) GROUP BY campaign
),
keys AS (SELECT campaign FROM outcomes UNION SELECT campaign FROM deliveries UNION SELECT campaign FROM blocks)
SELECT k.campaign, coalesce(o.sent, 0) AS sent,
       o.delivered / nullif(o.sent, 0) AS delivery_rate,
       o.read / nullif(o.delivered, 0) AS read_rate,
       o.clicked / nullif(o.delivered, 0) AS click_rate,
       o.converted / nullif(o.delivered, 0) AS conversion_rate,
       coalesce(o.revenue, 0) AS revenue,
       coalesce(b.n, 0) / nullif(d.n, 0) AS block_rate
FROM keys AS k
LEFT JOIN outcomes AS o ON o.campaign IS NOT DISTINCT FROM k.campaign
LEFT JOIN deliveries AS d ON d.campaign IS NOT DISTINCT FROM k.campaign
LEFT JOIN blocks AS b ON b.campaign IS NOT DISTINCT FROM k.campaign
ORDER BY sent DESC, k.campaign NULLS LAST
LIMIT 20;
