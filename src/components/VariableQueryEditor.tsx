import React from 'react';
import { QueryEditorProps } from '@grafana/data';
import { Alert, InlineField, InlineFieldRow, Select } from '@grafana/ui';

import type { DataSource } from '../datasource';
import { asQuery, setField } from '../query';
import { BlueTicksOptions, BlueTicksQuery } from '../types';
import { FiltersEditor } from './FiltersEditor';
import { dimensionOptions, optionFor } from './options';
import { Components } from './selectors';
import { useCatalog } from './useCatalog';

type Props = QueryEditorProps<DataSource, BlueTicksQuery, BlueTicksOptions>;

/**
 * A variable lists the distinct values of one dimension (`queryType: "values"`),
 * optionally filtered, also by other variables (e.g. templates of `$campaign`).
 */
export function VariableQueryEditor({ datasource, query: given, onChange }: Props) {
  const { dimensions, error } = useCatalog(datasource);
  const query = asQuery(given);
  const base: BlueTicksQuery = { ...query, queryType: 'values' };
  const options = dimensionOptions(dimensions);

  return (
    <div>
      {error && (
        <Alert title="Could not load the dimensions" severity="error">
          {error}
        </Alert>
      )}
      <InlineFieldRow>
        <InlineField
          label="Dimension"
          labelWidth={14}
          htmlFor="blueticks-variable-dimension"
          tooltip="The variable's options are the distinct values of this dimension, sorted."
        >
          <Select<string>
            inputId="blueticks-variable-dimension"
            aria-label={Components.VariableQueryEditor.dimension}
            options={options}
            value={query.dimension ? optionFor(options, query.dimension) : null}
            placeholder="Pick a dimension"
            width={30}
            onChange={(v) => onChange(setField(base, 'dimension', v.value))}
          />
        </InlineField>
      </InlineFieldRow>
      <FiltersEditor
        datasource={datasource}
        dimensions={dimensions}
        filters={query.filters ?? []}
        onChange={(filters) => onChange(setField(base, 'filters', filters))}
      />
    </div>
  );
}
