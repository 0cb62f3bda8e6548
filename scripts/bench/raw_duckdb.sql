-- The overview KPIs written as a user would in DuckDB SQL over a raw `events` table (SPEC
-- columns, duplicates included): deduplicate by event_id, take each message's sent event,
-- join its statuses, attribute replies and conversions (reply_to, else the latest campaign
-- message to the contact within the window). $1 and $2 are the range's ends (TIMESTAMPTZ).
-- Used by BenchmarkRawDuckDB (pkg/kpi/bench_test.go) and scripts/bench.sh.

-- name: status_daily
WITH ev AS (SELECT * FROM events QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1),
msg AS (SELECT message_id, min(ts) AS send_ts FROM ev WHERE type = 'sent' GROUP BY message_id),
st AS (SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r, bool_or(type = 'failed') AS f
       FROM ev WHERE type IN ('delivered', 'read', 'failed') GROUP BY message_id)
SELECT date_trunc('day', msg.send_ts AT TIME ZONE 'UTC') AS day, count(*) AS sent,
       count(*) FILTER (WHERE st.d) AS delivered, count(*) FILTER (WHERE st.r) AS read, count(*) FILTER (WHERE st.f) AS failed
FROM msg LEFT JOIN st USING (message_id)
WHERE msg.send_ts >= $1 AND msg.send_ts < $2
GROUP BY 1 ORDER BY 1;

-- name: rates
WITH ev AS (SELECT * FROM events QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1),
msg AS (SELECT message_id, min(ts) AS send_ts FROM ev WHERE type = 'sent' GROUP BY message_id),
st AS (SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r
       FROM ev WHERE type IN ('delivered', 'read') GROUP BY message_id)
SELECT count(*) FILTER (WHERE st.d) / count(*) AS delivery_rate,
       count(*) FILTER (WHERE st.r) / nullif(count(*) FILTER (WHERE st.d), 0) AS read_rate
FROM msg LEFT JOIN st USING (message_id)
WHERE msg.send_ts >= $1 AND msg.send_ts < $2;

-- name: conversion_rate
WITH ev AS (SELECT * FROM events QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1),
msg AS (SELECT message_id, any_value(contact_id) AS contact_id, any_value(sender) AS sender, min(ts) AS send_ts
        FROM ev WHERE type = 'sent' GROUP BY message_id),
dl AS (SELECT DISTINCT message_id FROM ev WHERE type IN ('delivered', 'read')),
conv AS (SELECT event_id, contact_id, ts, reply_to FROM ev WHERE type = 'converted'),
credited AS (
  SELECT coalesce(c.reply_to, CASE WHEN c.ts - m.send_ts <= INTERVAL 7 DAY THEN m.message_id END) AS message_id
  FROM conv AS c ASOF LEFT JOIN (SELECT * FROM msg WHERE sender = 'campaign') AS m
    ON c.contact_id = m.contact_id AND c.ts >= m.send_ts
)
SELECT count(DISTINCT msg.message_id) FILTER (WHERE msg.message_id IN (SELECT message_id FROM credited))
       / nullif(count(DISTINCT msg.message_id), 0) AS conversion_rate
FROM msg JOIN dl USING (message_id)
WHERE msg.send_ts >= $1 AND msg.send_ts < $2;

-- name: block_rate
WITH ev AS (SELECT * FROM events QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1),
deliv AS (SELECT message_id, min(ts) AS ts FROM ev WHERE type IN ('delivered', 'read') GROUP BY message_id)
SELECT (SELECT count(*) FROM ev WHERE type = 'blocked' AND ts >= $1 AND ts < $2)
       / nullif((SELECT count(*) FROM deliv WHERE ts >= $1 AND ts < $2), 0) AS block_rate;

-- name: campaigns
WITH ev AS (SELECT * FROM events QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ts) = 1),
msg AS (SELECT message_id, any_value(contact_id) AS contact_id, any_value(campaign) AS campaign, any_value(sender) AS sender,
               min(ts) AS send_ts FROM ev WHERE type = 'sent' GROUP BY message_id),
st AS (SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r
       FROM ev WHERE type IN ('delivered', 'read') GROUP BY message_id),
conv AS (SELECT event_id, contact_id, ts, reply_to, value FROM ev WHERE type = 'converted'),
credited AS (
  SELECT coalesce(c.reply_to, CASE WHEN c.ts - m.send_ts <= INTERVAL 7 DAY THEN m.message_id END) AS message_id, c.value
  FROM conv AS c ASOF LEFT JOIN (SELECT * FROM msg WHERE sender = 'campaign') AS m
    ON c.contact_id = m.contact_id AND c.ts >= m.send_ts
),
per_msg AS (SELECT message_id, count(*) AS n, sum(value) AS revenue FROM credited WHERE message_id IS NOT NULL GROUP BY 1)
SELECT msg.campaign, count(*) AS sent,
       count(*) FILTER (WHERE st.d) / count(*) AS delivery_rate,
       count(*) FILTER (WHERE st.r) / nullif(count(*) FILTER (WHERE st.d), 0) AS read_rate,
       count(*) FILTER (WHERE st.d AND per_msg.n > 0) / nullif(count(*) FILTER (WHERE st.d), 0) AS conversion_rate,
       coalesce(sum(per_msg.revenue), 0) AS revenue
FROM msg LEFT JOIN st USING (message_id) LEFT JOIN per_msg USING (message_id)
WHERE msg.send_ts >= $1 AND msg.send_ts < $2
GROUP BY 1 ORDER BY sent DESC LIMIT 20;
