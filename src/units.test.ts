import { unitLabel } from './units';

describe('unitLabel', () => {
  it('names each kind of metric in words', () => {
    expect(unitLabel({ kind: 'count', unit: 'none' })).toBe('count');
    expect(unitLabel({ kind: 'rate', unit: 'percentunit' })).toBe('percent');
    expect(unitLabel({ kind: 'currency', unit: 'currencyEUR' })).toBe('EUR');
    expect(unitLabel({ kind: 'duration', unit: 's' })).toBe('seconds');
    expect(unitLabel({ kind: 'score', unit: 'none' })).toBe('score');
    expect(unitLabel({ kind: 'state', unit: 'none' })).toBe('state: 0 green, 1 yellow, 2 red');
  });
  it('falls back to the unit id for a kind it does not know', () => {
    expect(unitLabel({ kind: 'other', unit: 'bytes' })).toBe('bytes');
  });
});
