-- The overview dashboard's KPIs written as a user of Grafana's PostgreSQL data source would,
-- over a raw `events` table in SPEC columns (duplicates included) with the indexes of
-- scripts/bench.sh. The same definitions, time filters and result columns as
-- raw_duckdb.sql (read its header); only the dialect differs: the latest campaign message
-- before an event is a LATERAL index probe (events_last_touch_idx) instead of DuckDB's ASOF
-- JOIN, integer ratios are cast to float8, and percentiles use percentile_cont.
-- $1 and $2 are the range's ends (timestamptz literals).

-- name: sent
SELECT date_trunc('hour', send_ts AT TIME ZONE 'UTC') AS time, count(*) AS sent
FROM (SELECT message_id, min(ts) AS send_ts FROM events
      WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2 GROUP BY message_id) AS msg
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
  FROM events AS e
  CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                      WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                        AND s.contact_id = e.contact_id AND s.ts <= e.ts
                      ORDER BY s.ts DESC LIMIT 1) AS c
  WHERE e.type IN ('received', 'clicked') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL AND e.ts >= $1
    AND c.ts >= e.ts - INTERVAL '24 hours' AND c.message_id IN (SELECT message_id FROM msg)
),
-- Joins, not `message_id IN (st UNION touched)` in the select list: PostgreSQL hashes such an
-- IN only while it fits work_mem, and at 100M events (~3M messages a week) it ran a subplan
-- per message instead (not finished after 8 min).
m AS (
  SELECT st.message_id IS NOT NULL OR t.message_id IS NOT NULL AS d
  FROM msg LEFT JOIN st USING (message_id) LEFT JOIN touched AS t USING (message_id)
)
SELECT (count(*) FILTER (WHERE d))::float8 / nullif(count(*), 0) AS delivery_rate FROM m;

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
  FROM events AS e
  CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                      WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                        AND s.contact_id = e.contact_id AND s.ts <= e.ts
                      ORDER BY s.ts DESC LIMIT 1) AS c
  WHERE e.type IN ('received', 'clicked') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL AND e.ts >= $1
    AND c.ts >= e.ts - INTERVAL '24 hours' AND c.message_id IN (SELECT message_id FROM msg)
),
m AS (
  SELECT st.r IS TRUE AS r, st.message_id IS NOT NULL OR t.message_id IS NOT NULL AS d
  FROM msg LEFT JOIN st USING (message_id) LEFT JOIN touched AS t USING (message_id)
)
SELECT (count(*) FILTER (WHERE r))::float8 / nullif(count(*) FILTER (WHERE d), 0) AS read_rate FROM m;

-- name: click_rate
WITH msg AS (
  SELECT DISTINCT message_id FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2
),
st AS (
  SELECT DISTINCT message_id FROM events
  WHERE type IN ('delivered', 'read') AND message_id IN (SELECT message_id FROM msg)
),
cr AS (
  SELECT type, reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked') AND reply_to IN (SELECT message_id FROM msg)
  UNION ALL
  SELECT e.type, c.message_id
  FROM events AS e
  CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                      WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                        AND s.contact_id = e.contact_id AND s.ts <= e.ts
                      ORDER BY s.ts DESC LIMIT 1) AS c
  WHERE e.type IN ('received', 'clicked') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL AND e.ts >= $1
    AND c.ts >= e.ts - INTERVAL '24 hours' AND c.message_id IN (SELECT message_id FROM msg)
),
eng AS (SELECT message_id, bool_or(type = 'clicked') AS clicked FROM cr GROUP BY message_id),
m AS (
  SELECT eng.clicked IS TRUE AS clicked, st.message_id IS NOT NULL OR eng.message_id IS NOT NULL AS d
  FROM msg LEFT JOIN st USING (message_id) LEFT JOIN eng USING (message_id)
)
SELECT (count(*) FILTER (WHERE clicked))::float8 / nullif(count(*) FILTER (WHERE d), 0) AS click_rate FROM m;

-- name: conversion_rate
WITH msg AS (
  SELECT DISTINCT message_id FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2
),
st AS (
  SELECT DISTINCT message_id FROM events
  WHERE type IN ('delivered', 'read') AND message_id IN (SELECT message_id FROM msg)
),
cr AS (
  SELECT type, reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked', 'converted') AND reply_to IN (SELECT message_id FROM msg)
  UNION ALL
  SELECT e.type, c.message_id
  FROM events AS e
  CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                      WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                        AND s.contact_id = e.contact_id AND s.ts <= e.ts
                      ORDER BY s.ts DESC LIMIT 1) AS c
  WHERE e.type IN ('received', 'clicked', 'converted') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL AND e.ts >= $1
    AND c.ts >= e.ts - CASE WHEN e.type = 'converted' THEN INTERVAL '7 days' ELSE INTERVAL '24 hours' END
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
SELECT (count(*) FILTER (WHERE converted AND d))::float8 / nullif(count(*) FILTER (WHERE d), 0) AS conversion_rate FROM m;

-- name: revenue
WITH msg AS (
  SELECT message_id, min(ts) AS send_ts FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2 GROUP BY message_id
),
conv AS (
  SELECT DISTINCT event_id, value, reply_to AS message_id FROM events
  WHERE type = 'converted' AND reply_to IN (SELECT message_id FROM msg)
  UNION
  SELECT DISTINCT e.event_id, e.value, c.message_id
  FROM events AS e
  CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                      WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                        AND s.contact_id = e.contact_id AND s.ts <= e.ts
                      ORDER BY s.ts DESC LIMIT 1) AS c
  WHERE e.type = 'converted' AND e.reply_to IS NULL AND e.contact_id IS NOT NULL AND e.ts >= $1
    AND c.ts >= e.ts - INTERVAL '7 days' AND c.message_id IN (SELECT message_id FROM msg)
)
SELECT date_trunc('hour', msg.send_ts AT TIME ZONE 'UTC') AS time, coalesce(sum(conv.value), 0) AS revenue
FROM msg LEFT JOIN conv USING (message_id)
GROUP BY 1 ORDER BY 1;

-- name: block_rate
WITH sent AS (
  SELECT DISTINCT message_id FROM events WHERE type = 'sent' AND message_id IS NOT NULL
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
    FROM events AS e
    CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                        WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                          AND s.contact_id = e.contact_id AND s.ts <= e.ts
                        ORDER BY s.ts DESC LIMIT 1) AS c
    WHERE e.type IN ('received', 'clicked') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL
      AND c.ts >= e.ts - INTERVAL '24 hours'
  ) AS t GROUP BY message_id
),
deliv AS (SELECT coalesce(sd.ts, cd.ts) AS ts FROM sd FULL JOIN cd USING (message_id))
SELECT (SELECT count(DISTINCT event_id) FROM events WHERE type = 'blocked' AND ts >= $1 AND ts < $2)::float8
       / nullif((SELECT count(*) FROM deliv WHERE ts >= $1 AND ts < $2), 0) AS block_rate;

-- name: opt_out_rate
WITH sent AS (
  SELECT DISTINCT message_id FROM events WHERE type = 'sent' AND message_id IS NOT NULL
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
    FROM events AS e
    CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                        WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                          AND s.contact_id = e.contact_id AND s.ts <= e.ts
                        ORDER BY s.ts DESC LIMIT 1) AS c
    WHERE e.type IN ('received', 'clicked') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL
      AND c.ts >= e.ts - INTERVAL '24 hours'
  ) AS t GROUP BY message_id
),
deliv AS (SELECT coalesce(sd.ts, cd.ts) AS ts FROM sd FULL JOIN cd USING (message_id))
SELECT (SELECT count(DISTINCT event_id) FROM events WHERE type = 'opted_out' AND ts >= $1 AND ts < $2)::float8
       / nullif((SELECT count(*) FROM deliv WHERE ts >= $1 AND ts < $2), 0) AS opt_out_rate;

-- name: conversations
SELECT date_trunc('hour', opened AT TIME ZONE 'UTC') AS time, count(*) AS conversations
FROM (SELECT conversation_id, min(ts) AS opened FROM events WHERE type = 'conversation_opened' GROUP BY conversation_id) AS op
WHERE opened >= $1 AND opened < $2
GROUP BY 1 ORDER BY 1;

-- name: first_response_p50
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
  SELECT extract(epoch FROM am.answered)::float8
         - extract(epoch FROM greatest(am.opened, coalesce(max(es.ts), am.opened)))::float8 AS s
  FROM am LEFT JOIN events AS es
    ON es.conversation_id = am.conversation_id AND es.type = 'escalated' AND es.ts <= am.answered
  GROUP BY am.conversation_id, am.opened, am.answered
)
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS first_response_time_p50 FROM frt;

-- name: status_daily
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
  FROM events AS e
  CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                      WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                        AND s.contact_id = e.contact_id AND s.ts <= e.ts
                      ORDER BY s.ts DESC LIMIT 1) AS c
  WHERE e.type IN ('received', 'clicked') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL AND e.ts >= $1
    AND c.ts >= e.ts - INTERVAL '24 hours' AND c.message_id IN (SELECT message_id FROM msg)
)
SELECT date_trunc('day', msg.send_ts AT TIME ZONE 'UTC') AS time, count(*) AS sent,
       count(*) FILTER (WHERE st.d OR t.message_id IS NOT NULL) AS delivered,
       count(*) FILTER (WHERE st.r) AS read,
       count(*) FILTER (WHERE st.f) AS failed
FROM msg LEFT JOIN st USING (message_id) LEFT JOIN touched AS t USING (message_id)
GROUP BY 1 ORDER BY 1;

-- name: funnel_daily
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
  FROM events AS e
  CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                      WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                        AND s.contact_id = e.contact_id AND s.ts <= e.ts
                      ORDER BY s.ts DESC LIMIT 1) AS c
  WHERE e.type IN ('received', 'clicked', 'converted') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL AND e.ts >= $1
    AND c.ts >= e.ts - CASE WHEN e.type = 'converted' THEN INTERVAL '7 days' ELSE INTERVAL '24 hours' END
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
       (count(*) FILTER (WHERE d))::float8 / nullif(count(*), 0) AS delivery_rate,
       (count(*) FILTER (WHERE r))::float8 / nullif(count(*) FILTER (WHERE d), 0) AS read_rate,
       (count(*) FILTER (WHERE clicked))::float8 / nullif(count(*) FILTER (WHERE d), 0) AS click_rate,
       (count(*) FILTER (WHERE replied))::float8 / nullif(count(*) FILTER (WHERE d), 0) AS reply_rate,
       (count(*) FILTER (WHERE converted AND d))::float8 / nullif(count(*) FILTER (WHERE d), 0) AS conversion_rate
FROM m GROUP BY 1 ORDER BY 1;

-- name: campaigns
WITH sent AS (
  SELECT DISTINCT message_id, ts AS send_ts, campaign FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL
),
msg AS (
  SELECT DISTINCT message_id, ts AS send_ts, campaign FROM events
  WHERE type = 'sent' AND message_id IS NOT NULL AND ts >= $1 AND ts < $2
),
st AS (
  SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r
  FROM events WHERE type IN ('delivered', 'read') AND message_id IN (SELECT message_id FROM msg)
  GROUP BY message_id
),
cr AS (
  SELECT event_id, type, value, reply_to AS message_id FROM events
  WHERE type IN ('received', 'clicked', 'converted') AND reply_to IN (SELECT message_id FROM msg)
  UNION ALL
  SELECT e.event_id, e.type, e.value, c.message_id
  FROM events AS e
  CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                      WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                        AND s.contact_id = e.contact_id AND s.ts <= e.ts
                      ORDER BY s.ts DESC LIMIT 1) AS c
  WHERE e.type IN ('received', 'clicked', 'converted') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL AND e.ts >= $1
    AND c.ts >= e.ts - CASE WHEN e.type = 'converted' THEN INTERVAL '7 days' ELSE INTERVAL '24 hours' END
    AND c.message_id IN (SELECT message_id FROM msg)
),
eng AS (
  SELECT message_id, bool_or(type = 'clicked') AS clicked, bool_or(type = 'received') AS replied,
         bool_or(type = 'converted') AS converted, sum(value) FILTER (WHERE type = 'converted') AS revenue
  FROM (SELECT DISTINCT event_id, type, value, message_id FROM cr) AS x GROUP BY message_id
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
    FROM events AS e
    CROSS JOIN LATERAL (SELECT s.message_id, s.ts FROM events AS s
                        WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                          AND s.contact_id = e.contact_id AND s.ts <= e.ts
                        ORDER BY s.ts DESC LIMIT 1) AS c
    WHERE e.type IN ('received', 'clicked') AND e.reply_to IS NULL AND e.contact_id IS NOT NULL
      AND c.ts >= e.ts - INTERVAL '24 hours'
  ) AS t GROUP BY message_id
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
    SELECT coalesce(b.campaign, CASE WHEN c.ts >= b.ts - INTERVAL '24 hours' THEN c.campaign END)
    FROM blk AS b
    LEFT JOIN LATERAL (SELECT s.campaign, s.ts FROM events AS s
                       WHERE s.type = 'sent' AND s.sender = 'campaign' AND s.message_id IS NOT NULL
                         AND s.contact_id = b.contact_id AND s.ts <= b.ts
                       ORDER BY s.ts DESC LIMIT 1) AS c ON true
    WHERE b.about IS NULL
  ) AS x GROUP BY campaign
),
keys AS (SELECT campaign FROM outcomes UNION SELECT campaign FROM deliveries UNION SELECT campaign FROM blocks)
SELECT k.campaign, coalesce(o.sent, 0) AS sent,
       o.delivered::float8 / nullif(o.sent, 0) AS delivery_rate,
       o.read::float8 / nullif(o.delivered, 0) AS read_rate,
       o.clicked::float8 / nullif(o.delivered, 0) AS click_rate,
       o.converted::float8 / nullif(o.delivered, 0) AS conversion_rate,
       coalesce(o.revenue, 0) AS revenue,
       coalesce(b.n, 0)::float8 / nullif(d.n, 0) AS block_rate
FROM keys AS k
LEFT JOIN outcomes AS o ON o.campaign IS NOT DISTINCT FROM k.campaign
LEFT JOIN deliveries AS d ON d.campaign IS NOT DISTINCT FROM k.campaign
LEFT JOIN blocks AS b ON b.campaign IS NOT DISTINCT FROM k.campaign
ORDER BY sent DESC, k.campaign NULLS LAST
LIMIT 20;
