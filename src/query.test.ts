import { changeQueryType, pruneQuery, setField, validateQuery } from './query';
import { METRICS } from './test/fakes';
import { BlueTicksQuery } from './types';

describe('query helpers', () => {
  it('setField omits empty values', () => {
    const q: BlueTicksQuery = { refId: 'A', queryType: 'table', metrics: ['sent'], limit: 5 };
    expect(setField(q, 'groupBy', [])).toEqual(q);
    expect(setField(q, 'limit', undefined)).toEqual({ refId: 'A', queryType: 'table', metrics: ['sent'] });
    expect(setField(q, 'timezone', 'Europe/Rome')).toEqual({ ...q, timezone: 'Europe/Rome' });
  });

  it('pruneQuery keeps only the fields of the query type', () => {
    expect(
      pruneQuery({ refId: 'A', queryType: 'values', dimension: 'campaign', metrics: ['sent'], bucket: '1h', filters: [] })
    ).toEqual({ refId: 'A', queryType: 'values', dimension: 'campaign' });
  });

  it('changeQueryType carries the A/B rate back to metrics', () => {
    const ab = changeQueryType({ refId: 'A', queryType: 'timeseries', metrics: ['sent'] }, 'ab', METRICS);
    expect(ab).toEqual({ refId: 'A', queryType: 'ab' });
    const back = changeQueryType({ refId: 'A', queryType: 'ab', metric: 'read_rate' }, 'table', METRICS);
    expect(back).toEqual({ refId: 'A', queryType: 'table', metrics: ['read_rate'] });
  });

  it.each<[Partial<BlueTicksQuery>, string]>([
    [{ queryType: 'timeseries', metrics: ['nope'] }, 'Unknown metric "nope".'],
    [{ queryType: 'ab', metric: 'block_rate' }, 'Block rate cannot be compared between variants; pick a message-cohort rate.'],
    [{ queryType: 'values' }, 'Pick the dimension whose values the variable lists.'],
    [{ queryType: 'table', metrics: ['sent'], limit: 501 }, 'Limit must be a whole number from 1 to 500.'],
    [{ queryType: 'sql' }, 'Write a SELECT over the view events.'],
  ])('validateQuery(%j) explains: %s', (query, problem) => {
    expect(validateQuery({ refId: 'A', ...query }, METRICS)).toContain(problem);
  });

  it('validateQuery accepts metric variables and a complete query', () => {
    expect(validateQuery({ refId: 'A', queryType: 'timeseries', metrics: ['$kpi', 'sent'] }, METRICS)).toEqual([]);
  });
});
