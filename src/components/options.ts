import { SelectableValue } from '@grafana/data';

import { DimensionDef } from '../types';

export function dimensionOptions(dimensions: DimensionDef[]): Array<SelectableValue<string>> {
  return dimensions.map((d) => ({ label: d.name || d.id, value: d.id, description: d.description }));
}

/**
 * The option showing `value`, or one made for it: a Select given a bare value it does
 * not list (a template variable, a custom bucket, an id the catalog lost) shows nothing.
 */
export function optionFor(options: Array<SelectableValue<string>>, value: string): SelectableValue<string> {
  const flat = options.flatMap((o) => (o.options ? (o.options as Array<SelectableValue<string>>) : [o]));
  return flat.find((o) => o.value === value) ?? { label: value, value };
}

/** The values of a multi-select's selection, without empty ones. */
export function selectedValues(selected: Array<SelectableValue<string>>): string[] {
  return selected.map((s) => s.value).filter((v): v is string => Boolean(v));
}
