import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

/** The query types of SPEC section 3. `values` serves template variables. */
export type QueryType = 'timeseries' | 'table' | 'funnel' | 'retention' | 'ab' | 'sql' | 'values';

/** The shapes a user picks in the query editor (everything but `values`). */
export type Shape = Exclude<QueryType, 'values'>;

export type FilterOp = 'in' | 'not_in';

export interface Filter {
  dimension: string;
  op: FilterOp;
  /** Literal values or template variable references (`$campaign`, `${country}`). */
  values: string[];
}

export type RetentionPeriod = 'day' | 'week' | 'month';

/**
 * The query JSON of SPEC section 3. Optional fields are omitted when empty, so the
 * saved JSON is exactly what a person would write by hand.
 */
export interface BlueTicksQuery extends DataQuery {
  queryType?: QueryType;
  metrics?: string[];
  metric?: string;
  groupBy?: string[];
  filters?: Filter[];
  bucket?: string;
  limit?: number;
  timezone?: string;
  period?: RetentionPeriod;
  dimension?: string;
  rawSql?: string;
}

/** Fields of the query model besides `refId`, `queryType` and Grafana's own. */
export type QueryField = Exclude<keyof BlueTicksQuery, keyof DataQuery>;

/** Which fields each query type takes; the editor drops the others when the type changes. */
export const QUERY_FIELDS: Record<QueryType, QueryField[]> = {
  timeseries: ['metrics', 'groupBy', 'filters', 'bucket', 'limit', 'timezone'],
  table: ['metrics', 'groupBy', 'filters', 'limit', 'timezone'],
  funnel: ['groupBy', 'filters', 'limit', 'timezone'],
  retention: ['filters', 'period', 'timezone'],
  ab: ['metric', 'groupBy', 'filters', 'timezone'],
  sql: ['rawSql', 'timezone'],
  values: ['dimension', 'filters'],
};

export const SHAPES: Array<{ value: Shape; label: string; description: string }> = [
  { value: 'timeseries', label: 'Time series', description: 'Metrics per time bucket, one series per group' },
  { value: 'table', label: 'Table', description: 'Metrics over the whole range, one row per group' },
  {
    value: 'funnel',
    label: 'Funnel',
    description: 'sent → delivered → read → engaged → converted, with step rates',
  },
  {
    value: 'retention',
    label: 'Retention',
    description: 'Contacts by period of first activity × share active k periods later',
  },
  {
    value: 'ab',
    label: 'A/B test',
    description: 'One rate per variant with a 95 % Wilson interval and a p-value',
  },
  { value: 'sql', label: 'Raw SQL', description: 'A read-only SELECT over the view events' },
];

export const BUCKETS = ['1m', '5m', '10m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '1w'];

export const RETENTION_PERIODS: RetentionPeriod[] = ['day', 'week', 'month'];

export const DEFAULT_LIMIT = 20;
export const MAX_LIMIT = 500;
export const DEFAULT_PERIOD: RetentionPeriod = 'week';

export const DEFAULT_QUERY: Partial<BlueTicksQuery> = {
  queryType: 'timeseries',
  metrics: ['sent'],
};

/** A metric of the catalog, as the backend resource `metrics` serves it. */
export interface MetricDef {
  id: string;
  name: string;
  area: string;
  unit: string;
  kind: 'count' | 'rate' | 'currency' | 'duration' | 'score' | 'state' | string;
  description: string;
  timeSemantics?: string;
  shapes: string[];
}

export interface DimensionDef {
  id: string;
  name: string;
  description?: string;
}

export interface ValuesResponse {
  dimension: string;
  values: string[];
  truncated: boolean;
}

export const AREAS: Record<string, string> = {
  delivery: 'Delivery',
  engagement: 'Engagement',
  conversion: 'Conversion',
  churn_quality: 'Churn & quality',
  service: 'Service',
};

/** `jsonData` of the data source (docs/ARCHITECTURE.md, Settings). */
export interface BlueTicksOptions extends DataSourceJsonData {
  storePath?: string;
  /**
   * Where the backend keeps the facts it derives from the store across plugin restarts, so a
   * restart serves them at once instead of rebuilding them. Absent: `blueticks-facts` beside
   * Grafana's plugins directory (README, `factsDir`); an absolute path: that
   * directory (not writable by others); `none`: not kept. No effect on the embedded demo store.
   */
  factsDir?: string;
  queryTimeoutSeconds?: number;
  memoryLimitMB?: number;
  buildMemoryLimitMB?: number;
  threads?: number;
  maxRows?: number;
  maxConcurrentQueries?: number;
}

/** `secureJsonData`: never sent back to the browser. */
export interface BlueTicksSecureOptions {
  hashKey?: string;
}

export type LimitKey =
  | 'queryTimeoutSeconds'
  | 'memoryLimitMB'
  | 'buildMemoryLimitMB'
  | 'threads'
  | 'maxRows'
  | 'maxConcurrentQueries';

export interface LimitDef {
  key: LimitKey;
  label: string;
  description: string;
  /** The backend's default when the field is empty. */
  placeholder: string;
  max: number;
}

export const LIMITS: LimitDef[] = [
  {
    key: 'queryTimeoutSeconds',
    label: 'Query timeout (s)',
    description: 'A query running longer is cancelled.',
    placeholder: '30',
    max: 3600,
  },
  {
    key: 'memoryLimitMB',
    label: 'Memory limit (MB)',
    description: 'DuckDB memory limit while answering queries and taking new events.',
    placeholder: '128',
    max: 1048576,
  },
  {
    key: 'buildMemoryLimitMB',
    label: 'Build memory limit (MB)',
    description: 'DuckDB memory limit while building the facts of the whole store (given back afterwards).',
    placeholder: '1024',
    max: 1048576,
  },
  {
    key: 'threads',
    label: 'Threads',
    description: 'DuckDB worker threads.',
    placeholder: 'number of CPUs',
    max: 1024,
  },
  {
    key: 'maxRows',
    label: 'Max rows',
    description: 'Rows a single query may return.',
    placeholder: '100000',
    max: 100000000,
  },
  {
    key: 'maxConcurrentQueries',
    label: 'Max concurrent queries',
    description: 'Queries running at once; the others wait.',
    placeholder: '4',
    max: 256,
  },
];

/** Returns an error message for a limit's text, or undefined when it is valid or empty. */
export function validateLimit(def: LimitDef, text: string): string | undefined {
  const trimmed = text.trim();
  if (trimmed === '') {
    return undefined;
  }
  if (!/^\d+$/.test(trimmed) || Number(trimmed) < 1) {
    return 'Enter a positive whole number, or leave empty for the default.';
  }
  if (Number(trimmed) > def.max) {
    return `At most ${def.max.toLocaleString('en-US')}.`;
  }
  return undefined;
}

/** The `factsDir` value that keeps no facts across restarts. */
export const FACTS_DIR_NONE = 'none';

/**
 * Returns an error message for a facts directory's text, or undefined when it is empty,
 * `none`, or an absolute path (`/…`, a Windows drive `C:\…` or a UNC path `\\host\share`).
 * The backend checks the rest (that the directory is private).
 */
export function validateFactsDir(text: string): string | undefined {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed === FACTS_DIR_NONE) {
    return undefined;
  }
  if (trimmed.startsWith('/') || /^[A-Za-z]:[\\/]/.test(trimmed) || trimmed.startsWith('\\\\')) {
    return undefined;
  }
  return 'Enter an absolute path, "none", or leave empty for the default.';
}
