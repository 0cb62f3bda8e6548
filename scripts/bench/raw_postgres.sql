-- The overview KPIs written as a user of Grafana's PostgreSQL data source would, over a raw
-- `events` table (SPEC columns, duplicates included), with the indexes of scripts/bench.sh.
-- Same definitions as raw_duckdb.sql. $1 and $2 are the range's ends (timestamptz).

-- name: status_daily
WITH ev AS (SELECT DISTINCT ON (event_id) * FROM events ORDER BY event_id, ts),
msg AS (SELECT message_id, min(ts) AS send_ts FROM ev WHERE type = 'sent' GROUP BY message_id),
st AS (SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r, bool_or(type = 'failed') AS f
       FROM ev WHERE type IN ('delivered', 'read', 'failed') GROUP BY message_id)
SELECT date_trunc('day', msg.send_ts AT TIME ZONE 'UTC') AS day, count(*) AS sent,
       count(*) FILTER (WHERE st.d) AS delivered, count(*) FILTER (WHERE st.r) AS read, count(*) FILTER (WHERE st.f) AS failed
FROM msg LEFT JOIN st USING (message_id)
WHERE msg.send_ts >= $1 AND msg.send_ts < $2
GROUP BY 1 ORDER BY 1;

-- name: rates
WITH ev AS (SELECT DISTINCT ON (event_id) * FROM events ORDER BY event_id, ts),
msg AS (SELECT message_id, min(ts) AS send_ts FROM ev WHERE type = 'sent' GROUP BY message_id),
st AS (SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r
       FROM ev WHERE type IN ('delivered', 'read') GROUP BY message_id)
SELECT (count(*) FILTER (WHERE st.d))::float8 / count(*) AS delivery_rate,
       (count(*) FILTER (WHERE st.r))::float8 / nullif(count(*) FILTER (WHERE st.d), 0) AS read_rate
FROM msg LEFT JOIN st USING (message_id)
WHERE msg.send_ts >= $1 AND msg.send_ts < $2;

-- name: conversion_rate
WITH ev AS (SELECT DISTINCT ON (event_id) * FROM events ORDER BY event_id, ts),
msg AS (SELECT DISTINCT ON (message_id) message_id, contact_id, sender, ts AS send_ts
        FROM ev WHERE type = 'sent' ORDER BY message_id, ts),
dl AS (SELECT DISTINCT message_id FROM ev WHERE type IN ('delivered', 'read')),
credited AS (
  SELECT coalesce(c.reply_to, (SELECT m.message_id FROM msg AS m
                               WHERE m.contact_id = c.contact_id AND m.sender = 'campaign'
                                 AND m.send_ts <= c.ts AND m.send_ts >= c.ts - INTERVAL '7 days'
                               ORDER BY m.send_ts DESC LIMIT 1)) AS message_id
  FROM ev AS c WHERE c.type = 'converted'
)
SELECT (count(DISTINCT msg.message_id) FILTER (WHERE msg.message_id IN (SELECT message_id FROM credited)))::float8
       / nullif(count(DISTINCT msg.message_id), 0) AS conversion_rate
FROM msg JOIN dl USING (message_id)
WHERE msg.send_ts >= $1 AND msg.send_ts < $2;

-- name: block_rate
WITH ev AS (SELECT DISTINCT ON (event_id) * FROM events ORDER BY event_id, ts),
deliv AS (SELECT message_id, min(ts) AS ts FROM ev WHERE type IN ('delivered', 'read') GROUP BY message_id)
SELECT (SELECT count(*) FROM ev WHERE type = 'blocked' AND ts >= $1 AND ts < $2)::float8
       / nullif((SELECT count(*) FROM deliv WHERE ts >= $1 AND ts < $2), 0) AS block_rate;

-- name: campaigns
WITH ev AS (SELECT DISTINCT ON (event_id) * FROM events ORDER BY event_id, ts),
msg AS (SELECT DISTINCT ON (message_id) message_id, contact_id, campaign, sender, ts AS send_ts
        FROM ev WHERE type = 'sent' ORDER BY message_id, ts),
st AS (SELECT message_id, bool_or(type IN ('delivered', 'read')) AS d, bool_or(type = 'read') AS r
       FROM ev WHERE type IN ('delivered', 'read') GROUP BY message_id),
credited AS (
  SELECT coalesce(c.reply_to, (SELECT m.message_id FROM msg AS m
                               WHERE m.contact_id = c.contact_id AND m.sender = 'campaign'
                                 AND m.send_ts <= c.ts AND m.send_ts >= c.ts - INTERVAL '7 days'
                               ORDER BY m.send_ts DESC LIMIT 1)) AS message_id, c.value
  FROM ev AS c WHERE c.type = 'converted'
),
per_msg AS (SELECT message_id, count(*) AS n, sum(value) AS revenue FROM credited WHERE message_id IS NOT NULL GROUP BY 1)
SELECT msg.campaign, count(*) AS sent,
       (count(*) FILTER (WHERE st.d))::float8 / count(*) AS delivery_rate,
       (count(*) FILTER (WHERE st.r))::float8 / nullif(count(*) FILTER (WHERE st.d), 0) AS read_rate,
       (count(*) FILTER (WHERE st.d AND per_msg.n > 0))::float8 / nullif(count(*) FILTER (WHERE st.d), 0) AS conversion_rate,
       coalesce(sum(per_msg.revenue), 0) AS revenue
FROM msg LEFT JOIN st USING (message_id) LEFT JOIN per_msg USING (message_id)
WHERE msg.send_ts >= $1 AND msg.send_ts < $2
GROUP BY 1 ORDER BY sent DESC LIMIT 20;
