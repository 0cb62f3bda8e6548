import React, { useCallback, useState } from 'react';
import { SelectableValue } from '@grafana/data';
import { AsyncMultiSelect, IconButton, InlineField, InlineFieldRow, Select } from '@grafana/ui';

import type { DataSource } from '../datasource';
import { DimensionDef, Filter, FilterOp } from '../types';
import { dimensionOptions as toOptions, optionFor, selectedValues } from './options';
import { Components } from './selectors';
import { errorMessage } from './useCatalog';

const OPS: Array<SelectableValue<FilterOp>> = [
  { label: 'in', value: 'in', description: 'Keep rows whose value is one of these (never a missing value)' },
  { label: 'not in', value: 'not_in', description: 'Drop rows whose value is one of these (keeps missing values)' },
];

const VALUE_LIMIT = 100;

interface Props {
  datasource: DataSource;
  dimensions: DimensionDef[];
  filters: Filter[];
  onChange: (filters: Filter[]) => void;
}

/**
 * Filters `{dimension, op, values}`. A row is added by picking its dimension, so every
 * row has one; a row without values matches everything (the data source drops it).
 * Values are suggested from the `values` resource, and dashboard variables are offered
 * too (a multi-value variable expands into the list; "All" removes the filter).
 */
export function FiltersEditor({ datasource, dimensions, filters, onChange }: Props) {
  const dimensionOptions = toOptions(dimensions);

  const update = (index: number, patch: Partial<Filter>) =>
    onChange(filters.map((f, i) => (i === index ? { ...f, ...patch } : f)));

  return (
    <>
      {filters.map((filter, index) => (
        <InlineFieldRow key={index} data-testid={Components.Filters.row}>
          <InlineField label="Filter" labelWidth={14}>
            <Select
              aria-label={Components.Filters.dimension}
              options={dimensionOptions}
              value={optionFor(dimensionOptions, filter.dimension)}
              allowCustomValue
              width={22}
              onChange={(v) => v.value && update(index, { dimension: v.value, values: [] })}
            />
          </InlineField>
          <InlineField>
            <Select
              aria-label={Components.Filters.op}
              options={OPS}
              value={filter.op}
              width={12}
              onChange={(v) => update(index, { op: v.value ?? 'in' })}
            />
          </InlineField>
          <InlineField grow>
            <FilterValues
              datasource={datasource}
              dimension={filter.dimension}
              values={filter.values}
              onChange={(values) => update(index, { values })}
            />
          </InlineField>
          <IconButton
            name="trash-alt"
            aria-label={Components.Filters.remove}
            tooltip="Remove filter"
            onClick={() => onChange(filters.filter((_, i) => i !== index))}
          />
        </InlineFieldRow>
      ))}
      <InlineFieldRow>
        <InlineField
          label={filters.length === 0 ? 'Filter' : ''}
          labelWidth={14}
          tooltip="Keep or drop rows by dimension values. Values may be dashboard variables; a variable set to All removes the filter."
        >
          <Select
            aria-label={Components.Filters.add}
            placeholder="+ Add filter"
            options={dimensionOptions}
            value={null}
            width={22}
            onChange={(v) => v.value && onChange([...filters, { dimension: v.value, op: 'in', values: [] }])}
          />
        </InlineField>
      </InlineFieldRow>
    </>
  );
}

interface ValuesProps {
  datasource: DataSource;
  dimension: string;
  values: string[];
  onChange: (values: string[]) => void;
}

function FilterValues({ datasource, dimension, values, onChange }: ValuesProps) {
  const [error, setError] = useState<string>();
  const [truncated, setTruncated] = useState(false);

  const loadOptions = useCallback(
    async (q: string): Promise<Array<SelectableValue<string>>> => {
      const variables = datasource
        .getVariableNames()
        .filter((v) => v.toLowerCase().includes(q.toLowerCase()))
        .map((v) => ({ label: v, value: v, description: 'Dashboard variable' }));
      try {
        const r = await datasource.getValues(dimension, q, VALUE_LIMIT);
        setError(undefined);
        setTruncated(r.truncated);
        return [...variables, ...r.values.map((v) => ({ label: v, value: v }))];
      } catch (err) {
        setError(errorMessage(err));
        return variables;
      }
    },
    [datasource, dimension]
  );

  return (
    <div>
      <AsyncMultiSelect<string>
        key={dimension}
        aria-label={Components.Filters.values}
        placeholder="values (empty: no filter)"
        loadOptions={loadOptions}
        defaultOptions
        allowCustomValue
        value={values.map((v) => ({ label: v, value: v }))}
        onChange={(selected: Array<SelectableValue<string>>) => onChange(selectedValues(selected))}
        noOptionsMessage={error ? `Could not load values: ${error}` : 'No values found'}
        width={40}
      />
      {error && <div role="alert">Could not load values of {dimension}: {error}</div>}
      {truncated && !error && <div>Showing the first {VALUE_LIMIT} values: type to narrow them.</div>}
    </div>
  );
}
