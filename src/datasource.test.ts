import { ScopedVars } from '@grafana/data';

import { replaceConditionalAll } from './datasource';
import { FakeVariable, makeDataSource } from './test/fakes';
import { BlueTicksQuery } from './types';

const VARIABLES: FakeVariable[] = [
  { name: 'campaign', current: 'spring_sale', options: ['spring_sale', 'welcome'] },
  { name: 'countries', current: ['IT', 'DE'], options: ['IT', 'DE', 'FR'], multi: true, includeAll: true },
  { name: 'everyCountry', current: '$__all', options: ['IT', 'DE', 'FR'], multi: true, includeAll: true },
  { name: 'groups', current: ['campaign', 'country'], options: ['campaign', 'country'], multi: true },
  { name: 'tz', current: 'Europe/Rome' },
  { name: 'bucket', current: '1h' },
];

const apply = (query: Partial<BlueTicksQuery>, scopedVars: ScopedVars = {}) => {
  const { ds } = makeDataSource(VARIABLES);
  return ds.applyTemplateVariables({ refId: 'A', ...query }, scopedVars);
};

describe('applyTemplateVariables', () => {
  it('leaves a query without variables as it is', () => {
    const query: BlueTicksQuery = {
      refId: 'A',
      queryType: 'timeseries',
      metrics: ['delivery_rate', 'read_rate'],
      groupBy: ['campaign'],
      filters: [{ dimension: 'country', op: 'in', values: ['IT', 'DE'] }],
      bucket: '1h',
      limit: 10,
      timezone: 'Europe/Rome',
    };
    expect(apply(query)).toEqual(query);
  });

  it('puts a single-value variable into filter values', () => {
    const q = apply({ queryType: 'table', metrics: ['sent'], filters: [{ dimension: 'campaign', op: 'in', values: ['$campaign'] }] });
    expect(q.filters).toEqual([{ dimension: 'campaign', op: 'in', values: ['spring_sale'] }]);
  });

  it('expands a multi-value variable into one value each, next to literals, without duplicates', () => {
    const q = apply({
      queryType: 'timeseries',
      metrics: ['sent'],
      filters: [{ dimension: 'country', op: 'not_in', values: ['${countries}', 'FR', 'IT'] }],
    });
    expect(q.filters).toEqual([{ dimension: 'country', op: 'not_in', values: ['IT', 'DE', 'FR'] }]);
  });

  it('removes a filter whose variable is set to All, keeping the others', () => {
    const q = apply({
      queryType: 'timeseries',
      metrics: ['sent'],
      filters: [
        { dimension: 'country', op: 'in', values: ['$everyCountry'] },
        { dimension: 'campaign', op: 'in', values: ['$campaign'] },
      ],
    });
    expect(q.filters).toEqual([{ dimension: 'campaign', op: 'in', values: ['spring_sale'] }]);
  });

  it('removes empty filters and then the filters field itself', () => {
    const q = apply({
      queryType: 'timeseries',
      metrics: ['sent'],
      filters: [
        { dimension: 'country', op: 'in', values: [] },
        { dimension: 'country', op: 'in', values: ['$everyCountry'] },
      ],
    });
    expect(q).toEqual({ refId: 'A', queryType: 'timeseries', metrics: ['sent'] });
  });

  it('prefers scoped variables (repeated panels) over the dashboard selection', () => {
    const scoped: ScopedVars = { everyCountry: { text: 'IT', value: 'IT' } };
    const q = apply(
      { queryType: 'timeseries', metrics: ['sent'], filters: [{ dimension: 'country', op: 'in', values: ['$everyCountry'] }] },
      scoped
    );
    expect(q.filters).toEqual([{ dimension: 'country', op: 'in', values: ['IT'] }]);
  });

  it('expands variables in every field the same way', () => {
    const q = apply({
      queryType: 'timeseries',
      metrics: ['sent'],
      groupBy: ['$groups'],
      bucket: '$bucket',
      timezone: '${tz}',
    });
    expect(q).toMatchObject({ groupBy: ['campaign', 'country'], bucket: '1h', timezone: 'Europe/Rome' });
  });

  it('keeps text that names no variable', () => {
    const q = apply({ queryType: 'table', metrics: ['sent'], filters: [{ dimension: 'campaign', op: 'in', values: ['$nope', 'a$b'] }] });
    expect(q.filters?.[0].values).toEqual(['$nope', 'a$b']);
  });

  it('turns ad hoc filters into in / not_in filters', () => {
    const { ds } = makeDataSource(VARIABLES);
    const q = ds.applyTemplateVariables({ refId: 'A', queryType: 'table', metrics: ['sent'] }, {}, [
      { key: 'country', operator: '=', value: 'IT' },
      { key: 'campaign', operator: '!=', value: 'welcome' },
      { key: 'campaign', operator: '=~', value: 'w.*' },
    ]);
    expect(q.filters).toEqual([
      { dimension: 'country', op: 'in', values: ['IT'] },
      { dimension: 'campaign', op: 'not_in', values: ['welcome'] },
    ]);
  });

  describe('rawSql', () => {
    it('quotes multi-value and All variables as lists and inserts single values as they are', () => {
      const q = apply({
        queryType: 'sql',
        rawSql:
          "SELECT $__timeGroup(ts, '$bucket') AS time, count(*) FROM events WHERE $__timeFilter(ts) AND country IN ($countries) AND country IN (${everyCountry}) AND campaign = '$campaign'",
      });
      expect(q.rawSql).toBe(
        "SELECT $__timeGroup(ts, '1h') AS time, count(*) FROM events WHERE $__timeFilter(ts) AND country IN ('IT','DE') AND country IN ('IT','DE','FR') AND campaign = 'spring_sale'"
      );
    });

    it("leaves the backend's $__interval macros to the backend", () => {
      const q = apply(
        { queryType: 'sql', rawSql: 'SELECT $__interval, $__interval_ms, $bucket FROM events' },
        { __interval: { text: '5m', value: '5m' }, __interval_ms: { text: '300000', value: 300000 } }
      );
      expect(q.rawSql).toBe('SELECT $__interval, $__interval_ms, 1h FROM events');
    });

    it('escapes quotes inside values', () => {
      const q = apply({ queryType: 'sql', rawSql: 'SELECT 1 FROM events WHERE campaign IN ($c)' }, {
        c: { text: "O'Neil", value: ["O'Neil"] },
      });
      expect(q.rawSql).toBe("SELECT 1 FROM events WHERE campaign IN ('O''Neil')");
    });

    it('resolves $__conditionalAll: 1=1 for All, the condition otherwise', () => {
      const q = apply({
        queryType: 'sql',
        rawSql:
          'SELECT count(*) FROM events WHERE $__conditionalAll(country IN ($everyCountry), $everyCountry) AND $__conditionalAll(country IN ($countries), $countries)',
      });
      expect(q.rawSql).toBe("SELECT count(*) FROM events WHERE 1=1 AND country IN ('IT','DE')");
    });
  });
});

describe('replaceConditionalAll', () => {
  const all = (v: string) => (v === '$all' ? true : v === '$some' ? false : undefined);

  it.each([
    ['x AND $__conditionalAll(a IN ($all), $all)', 'x AND 1=1'],
    ['$__conditionalAll(f(a, b) = \'x,)\', $some) OR y', "f(a, b) = 'x,)' OR y"],
    ['$__conditionalAll(a, b)', '$__conditionalAll(a, b)'],
    ['$__conditionalAll(a IN ($some)', '$__conditionalAll(a IN ($some)'],
    ['no macro', 'no macro'],
  ])('%s → %s', (input, expected) => {
    expect(replaceConditionalAll(input, all)).toBe(expected);
  });
});

describe('filterQuery', () => {
  const { ds } = makeDataSource();
  it.each<[Partial<BlueTicksQuery>, boolean]>([
    [{ queryType: 'timeseries', metrics: ['sent'] }, true],
    [{ queryType: 'timeseries' }, false],
    [{ queryType: 'ab' }, false],
    [{ queryType: 'ab', metric: 'read_rate' }, true],
    [{ queryType: 'sql', rawSql: '  ' }, false],
    [{ queryType: 'funnel' }, true],
    [{ queryType: 'timeseries', metrics: ['sent'], hide: true }, false],
  ])('%j → %s', (query, runs) => {
    expect(ds.filterQuery({ refId: 'A', ...query })).toBe(runs);
  });
});

describe('resources', () => {
  it('fetches the catalog once and passes values parameters through', async () => {
    const { ds, getResource } = makeDataSource();
    await ds.getMetrics();
    await ds.getMetrics();
    expect(getResource.mock.calls.filter(([p]) => p === 'metrics')).toHaveLength(1);
    await expect(ds.getValues('country', 'i', 5)).resolves.toEqual({ dimension: 'country', values: ['IT'], truncated: false });
    expect(getResource).toHaveBeenLastCalledWith('values', { dimension: 'country', q: 'i', limit: 5 });
  });

  it('asks again after a failed catalog fetch', async () => {
    const { ds, getResource } = makeDataSource([], ['metrics']);
    await expect(ds.getMetrics()).rejects.toEqual(expect.objectContaining({ status: 500 }));
    await expect(ds.getMetrics()).rejects.toBeTruthy();
    expect(getResource.mock.calls.filter(([p]) => p === 'metrics')).toHaveLength(2);
  });
});
