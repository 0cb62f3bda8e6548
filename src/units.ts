import type { MetricDef } from './types';

/**
 * The words the editors show for a metric's unit. The backend sends Grafana unit ids
 * (`none`, `percentunit`, `s`, `currencyEUR`), which mean nothing to a reader of the help.
 */
export function unitLabel(m: Pick<MetricDef, 'kind' | 'unit'>): string {
  switch (m.kind) {
    case 'count':
      return 'count';
    case 'rate':
      return 'percent';
    case 'currency':
      return m.unit.startsWith('currency') ? m.unit.slice('currency'.length) : m.unit;
    case 'duration':
      return 'seconds';
    case 'score':
      return 'score';
    case 'state':
      return 'state: 0 green, 1 yellow, 2 red';
  }
  return m.unit;
}
