import { DataSourceInstanceSettings, ScopedVars, TypedVariableModel } from '@grafana/data';
import { TemplateSrv } from '@grafana/runtime';

import { DataSource } from '../datasource';
import { BlueTicksOptions, DimensionDef, MetricDef } from '../types';

export interface FakeVariable {
  name: string;
  /** Selected value(s); `$__all` for All. */
  current: string | string[];
  /** Every option's value, what All stands for. */
  options?: string[];
  multi?: boolean;
  includeAll?: boolean;
}

const PATTERN = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}/g;

type FormatFn = (value: string | string[], variable?: unknown) => string;

/**
 * A TemplateSrv that behaves like Grafana's for what the data source uses: `$var`,
 * `${var}` and `${var:csv}` references, scoped variables first, All as every option's
 * value, a format function called with the value and the variable, unknown names left alone.
 */
export function fakeTemplateSrv(variables: FakeVariable[]): TemplateSrv {
  const byName = new Map(variables.map((v) => [v.name, v]));
  const replace = (target?: string, scopedVars?: ScopedVars, format?: string | FormatFn): string =>
    (target ?? '').replace(PATTERN, (match, g1, g2, g3, g4, _g5, g6) => {
      const name: string = g1 ?? g2 ?? g4;
      const fmt = typeof format === 'function' ? format : (g3 ?? g6 ?? format);
      const scoped = scopedVars?.[name];
      const variable = byName.get(name);
      let value: string | string[];
      if (scoped) {
        value = scoped.value;
      } else if (variable) {
        const all = variable.current === '$__all' || (Array.isArray(variable.current) && variable.current.includes('$__all'));
        value = all ? (variable.options ?? []) : variable.current;
      } else {
        return match;
      }
      if (typeof fmt === 'function') {
        return fmt(value, variable);
      }
      if (Array.isArray(value)) {
        return fmt === 'csv' ? value.join(',') : `{${value.join(',')}}`;
      }
      return String(value);
    });

  return {
    getVariables: () =>
      variables.map((v) => ({ name: v.name, current: { value: v.current } }) as unknown as TypedVariableModel),
    replace,
    containsTemplate: (target?: string) => Boolean(target && new RegExp(PATTERN.source).test(target)),
    updateTimeRange: () => {},
  } as unknown as TemplateSrv;
}

export const INSTANCE_SETTINGS = {
  id: 1,
  uid: 'blueticks-demo',
  type: 'blueticks-whatsapp-datasource',
  name: 'Blue Ticks',
  access: 'proxy',
  readOnly: false,
  jsonData: {},
  meta: { id: 'blueticks-whatsapp-datasource', name: 'Blue Ticks', info: {} },
} as unknown as DataSourceInstanceSettings<BlueTicksOptions>;

export const METRICS: MetricDef[] = [
  {
    id: 'sent',
    name: 'Messages sent',
    area: 'delivery',
    unit: 'none',
    kind: 'count',
    description: 'messages sent',
    timeSemantics: 'send time',
    shapes: ['timeseries', 'table'],
  },
  {
    id: 'delivery_rate',
    name: 'Delivery rate',
    area: 'delivery',
    unit: 'percentunit',
    kind: 'rate',
    description: 'delivered / sent, message cohort',
    timeSemantics: 'send time',
    shapes: ['timeseries', 'table', 'ab'],
  },
  {
    id: 'read_rate',
    name: 'Read rate',
    area: 'delivery',
    unit: 'percentunit',
    kind: 'rate',
    description: 'read / delivered, message cohort (the open rate)',
    timeSemantics: 'send time',
    shapes: ['timeseries', 'table', 'ab'],
  },
  {
    id: 'block_rate',
    name: 'Block rate',
    area: 'churn_quality',
    unit: 'percentunit',
    kind: 'rate',
    description: 'blocked events / messages delivered, same bucket',
    timeSemantics: 'event time',
    shapes: ['timeseries', 'table'],
  },
  {
    id: 'quality_rating',
    name: 'Quality rating',
    area: 'churn_quality',
    unit: 'none',
    kind: 'state',
    description: 'latest quality per business number',
    timeSemantics: 'event time',
    shapes: ['timeseries', 'table'],
  },
];

export const DIMENSIONS: DimensionDef[] = [
  { id: 'campaign', name: 'Campaign', description: 'marketing campaign' },
  { id: 'country', name: 'Country', description: 'ISO 3166-1 alpha-2 of the contact' },
  { id: 'business_number', name: 'Business number' },
  { id: 'variant', name: 'Variant' },
];

export const VALUES: Record<string, string[]> = {
  campaign: ['black_friday', 'spring_sale', 'welcome'],
  country: ['DE', 'IT', 'FR'],
};

/**
 * A data source whose backend resources are stubbed: `getResource` is the frontend's
 * unit boundary. `fail` makes the named resource reject like a backend error.
 */
export function makeDataSource(variables: FakeVariable[] = [], fail: string[] = []) {
  const ds = new DataSource(INSTANCE_SETTINGS, fakeTemplateSrv(variables));
  const getResource = jest.fn(async (path: string, params?: Record<string, unknown>) => {
    if (fail.includes(path)) {
      throw { status: 500, data: { message: `${path} exploded` } };
    }
    switch (path) {
      case 'metrics':
        return { metrics: METRICS };
      case 'dimensions':
        return { dimensions: DIMENSIONS };
      case 'values': {
        const dim = String(params?.dimension);
        const q = String(params?.q ?? '').toLowerCase();
        const values = (VALUES[dim] ?? []).filter((v) => v.toLowerCase().includes(q));
        return { dimension: dim, values, truncated: false };
      }
      default:
        throw { status: 404, data: { message: 'not found' } };
    }
  });
  ds.getResource = getResource as unknown as DataSource['getResource'];
  return { ds, getResource };
}
