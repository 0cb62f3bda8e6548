import { BlueTicksQuery, DEFAULT_PERIOD, MAX_LIMIT, MetricDef, QUERY_FIELDS, QueryField, QueryType } from './types';

/**
 * Pure helpers on the query JSON, shared by the editors and the data source. They keep
 * the query exactly as SPEC section 3 writes it: empty optional fields are omitted.
 */

function isEmpty(value: unknown): boolean {
  return (
    value === undefined ||
    value === null ||
    value === '' ||
    (Array.isArray(value) && value.length === 0) ||
    (typeof value === 'number' && Number.isNaN(value))
  );
}

/**
 * A variable's query as Grafana hands it over: an object, or for a variable created before
 * this editor existed, a string (or nothing).
 */
export function asQuery(query: unknown, refId = 'variable'): BlueTicksQuery {
  return query && typeof query === 'object' ? (query as BlueTicksQuery) : { refId };
}

/** Sets one field, removing it when the new value is empty. */
export function setField<K extends QueryField>(
  query: BlueTicksQuery,
  field: K,
  value: BlueTicksQuery[K] | undefined
): BlueTicksQuery {
  const next: BlueTicksQuery = { ...query };
  if (isEmpty(value)) {
    delete next[field];
  } else {
    next[field] = value;
  }
  return next;
}

const ALL_FIELDS: QueryField[] = Array.from(new Set(Object.values(QUERY_FIELDS).flat()));

/** Drops the fields the query's type does not take, and the empty ones. */
export function pruneQuery(query: BlueTicksQuery): BlueTicksQuery {
  const type = query.queryType ?? 'timeseries';
  const keep = new Set(QUERY_FIELDS[type] ?? []);
  const next: BlueTicksQuery = { ...query };
  for (const field of ALL_FIELDS) {
    if (!keep.has(field) || isEmpty(next[field])) {
      delete next[field];
    }
  }
  return next;
}

/**
 * Switches the query type, carrying over what still applies: the first ab-capable rate
 * becomes `metric` for A/B, `metric` becomes `metrics` back, retention gets a period.
 */
export function changeQueryType(query: BlueTicksQuery, type: QueryType, metrics: MetricDef[]): BlueTicksQuery {
  const next: BlueTicksQuery = { ...query, queryType: type };
  if (type === 'ab' && !next.metric) {
    const abIds = new Set(metrics.filter((m) => m.shapes.includes('ab')).map((m) => m.id));
    next.metric = (query.metrics ?? []).find((id) => abIds.has(id));
  }
  if ((type === 'timeseries' || type === 'table') && isEmpty(next.metrics) && query.metric) {
    next.metrics = [query.metric];
  }
  if (type === 'retention' && !next.period) {
    next.period = DEFAULT_PERIOD;
  }
  return pruneQuery(next);
}

/**
 * What is wrong with a query before it runs, in words a user can act on. Empty: the query
 * is complete. The backend checks again (alert rules do not go through the editor).
 */
export function validateQuery(query: BlueTicksQuery, metrics: MetricDef[]): string[] {
  const problems: string[] = [];
  const type = query.queryType ?? 'timeseries';
  const byId = new Map(metrics.map((m) => [m.id, m]));
  const known = metrics.length > 0;

  if (type === 'timeseries' || type === 'table') {
    if (isEmpty(query.metrics)) {
      problems.push('Pick at least one metric.');
    }
    for (const id of query.metrics ?? []) {
      const def = byId.get(id);
      if (id.startsWith('$')) {
        continue;
      }
      if (known && !def) {
        problems.push(`Unknown metric "${id}".`);
      } else if (def && !def.shapes.includes(type)) {
        problems.push(`${def.name} cannot be shown as ${type}; it supports ${def.shapes.join(', ')}.`);
      }
    }
    const hasQuality = (query.metrics ?? []).includes('quality_rating');
    const qualityGroups = (query.groupBy ?? []).filter((d) => d !== 'business_number' && d !== 'template');
    if (hasQuality && qualityGroups.length > 0) {
      problems.push('Quality rating groups only by business_number (number ratings) or template (template ratings).');
    }
  }
  if (type === 'ab') {
    if (!query.metric) {
      problems.push('Pick the rate to compare between variants.');
    } else {
      const def = byId.get(query.metric);
      if (def && !def.shapes.includes('ab')) {
        problems.push(`${def.name} cannot be compared between variants; pick a message-cohort rate.`);
      }
    }
  }
  if (type === 'sql' && isEmpty(query.rawSql?.trim())) {
    problems.push('Write a SELECT over the view events.');
  }
  if (type === 'values' && !query.dimension) {
    problems.push('Pick the dimension whose values the variable lists.');
  }
  if (query.limit !== undefined && (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_LIMIT)) {
    problems.push(`Limit must be a whole number from 1 to ${MAX_LIMIT}.`);
  }
  return problems;
}

/** Whether the data source should send the query at all (a half-written query is not run). */
export function isRunnable(query: BlueTicksQuery): boolean {
  return validateQuery(query, []).length === 0;
}
