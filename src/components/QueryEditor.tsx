import React, { useMemo, useState } from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import {
  Alert,
  CodeEditor,
  InlineField,
  InlineFieldRow,
  Input,
  MultiSelect,
  RadioButtonGroup,
  Select,
} from '@grafana/ui';

import type { DataSource } from '../datasource';
import { changeQueryType, setField, validateQuery } from '../query';
import {
  AREAS,
  BlueTicksOptions,
  BlueTicksQuery,
  BUCKETS,
  DEFAULT_LIMIT,
  MAX_LIMIT,
  MetricDef,
  QUERY_FIELDS,
  QueryField,
  RETENTION_PERIODS,
  Shape,
  SHAPES,
} from '../types';
import { FiltersEditor } from './FiltersEditor';
import { dimensionOptions, optionFor, selectedValues } from './options';
import { Components } from './selectors';
import { useCatalog } from './useCatalog';
import { unitLabel } from '../units';

type Props = QueryEditorProps<DataSource, BlueTicksQuery, BlueTicksOptions>;

const LABEL_WIDTH = 14;

export const TIME_SEMANTICS_HELP =
  'Message outcomes (delivered, read, failed, clicks, replies, conversions, revenue, cost and their rates) ' +
  'are credited to the send time of the message: a rate is the share of the messages sent in that bucket, ' +
  'so the newest buckets still move as statuses, replies and conversions arrive. ' +
  'Events (counts, blocks, opt-outs, reports, customer turns) count at their own time; ' +
  'conversation KPIs at the time the conversation opened.';

export const SQL_MACROS: Array<[string, string]> = [
  ['$__timeFilter(ts)', "ts within the dashboard's time range"],
  ['$__timeFrom', 'start of the range, as a TIMESTAMPTZ literal'],
  ['$__timeTo', 'end of the range, as a TIMESTAMPTZ literal'],
  ["$__timeGroup(ts, '1h')", "ts truncated to buckets of that size (in the query's time zone)"],
  ['$__unixEpochFilter(col)', 'an epoch-seconds column within the range'],
  ['$__conditionalAll(condition, $var)', 'the condition, or 1=1 when $var is set to All'],
  ['$__interval', "the panel's interval, as a DuckDB INTERVAL ($__interval_ms: in milliseconds)"],
];

const TIMEZONES: string[] = (() => {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  try {
    return intl.supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
})();

const TIMEZONE_OPTIONS = TIMEZONES.map((tz) => ({ label: tz, value: tz }));
const BUCKET_OPTIONS = [{ label: 'auto', value: '' }, ...BUCKETS.map((b) => ({ label: b, value: b }))];

function metricOption(m: MetricDef): SelectableValue<string> {
  const when = m.timeSemantics ? ` · ${m.timeSemantics}` : '';
  return { label: m.name || m.id, value: m.id, description: `${unitLabel(m)}${when} — ${m.description}` };
}

/** Metric options grouped by area, keeping only those that support `shape`. */
function groupedMetricOptions(metrics: MetricDef[], shape: string): Array<SelectableValue<string>> {
  const groups = new Map<string, Array<SelectableValue<string>>>();
  for (const m of metrics) {
    if (!m.shapes.includes(shape)) {
      continue;
    }
    const area = AREAS[m.area] ?? m.area;
    groups.set(area, [...(groups.get(area) ?? []), metricOption(m)]);
  }
  // expanded: Grafana 10's Select folds groups (also while searching), hiding every match
  return Array.from(groups, ([label, options]) => ({ label, options, expanded: true }));
}

export function QueryEditor({ datasource, query, onChange, onRunQuery }: Props) {
  const { metrics, dimensions, error: catalogError } = useCatalog(datasource);
  const shape: Shape = query.queryType && query.queryType !== 'values' ? query.queryType : 'timeseries';
  const fields = new Set(QUERY_FIELDS[shape]);
  const byId = useMemo(() => new Map(metrics.map((m) => [m.id, m])), [metrics]);
  const problems = validateQuery({ ...query, queryType: shape }, metrics);

  const change = (next: BlueTicksQuery, run = true) => {
    // A query saved before it had a type (or made elsewhere) gets the shape it is shown as.
    onChange(next.queryType ? next : { ...next, queryType: shape });
    if (run) {
      onRunQuery();
    }
  };
  const set = <K extends QueryField>(field: K, value: BlueTicksQuery[K] | undefined) =>
    change(setField(query, field, value));

  const asOption = (id: string): SelectableValue<string> =>
    byId.has(id) ? metricOption(byId.get(id)!) : { label: id, value: id };
  const variableOptions = datasource.getVariableNames().map((v) => ({ label: v, value: v, description: 'Dashboard variable' }));
  const groupByOptions = [...dimensionOptions(dimensions), ...variableOptions];

  return (
    <div>
      {catalogError && (
        <Alert title="Could not load the metric catalog" severity="error" data-testid={Components.QueryEditor.catalogError}>
          {catalogError}
        </Alert>
      )}
      <InlineFieldRow>
        <InlineField label="Shape" labelWidth={LABEL_WIDTH}>
          <div data-testid={Components.QueryEditor.shape}>
            <RadioButtonGroup<Shape>
              options={SHAPES}
              value={shape}
              onChange={(v) => change(changeQueryType(query, v, metrics))}
            />
          </div>
        </InlineField>
      </InlineFieldRow>

      {fields.has('metrics') && (
        <InlineFieldRow>
          <InlineField
            label="Metrics"
            labelWidth={LABEL_WIDTH}
            grow
            htmlFor="blueticks-metrics"
            tooltip={`KPIs from the catalog; the list shows each one's unit and definition. ${TIME_SEMANTICS_HELP}`}
          >
            <MultiSelect<string>
              inputId="blueticks-metrics"
              aria-label={Components.QueryEditor.metrics}
              options={groupedMetricOptions(metrics, shape)}
              value={(query.metrics ?? []).map(asOption)}
              allowCustomValue
              placeholder="Pick KPIs"
              onChange={(selected: Array<SelectableValue<string>>) => set('metrics', selectedValues(selected))}
            />
          </InlineField>
        </InlineFieldRow>
      )}
      {fields.has('metrics') && <MetricDefinitions ids={query.metrics ?? []} byId={byId} />}

      {fields.has('metric') && (
        <InlineFieldRow>
          <InlineField
            label="Rate"
            labelWidth={LABEL_WIDTH}
            htmlFor="blueticks-metric"
            tooltip="A/B compares one message-cohort rate between the values of variant, against control (or the first variant alphabetically): 95 % Wilson intervals and a two-proportion test."
          >
            <Select<string>
              inputId="blueticks-metric"
              aria-label={Components.QueryEditor.metric}
              options={groupedMetricOptions(metrics, 'ab')}
              value={query.metric ? asOption(query.metric) : null}
              placeholder="Pick a rate"
              width={40}
              onChange={(v) => set('metric', v.value)}
            />
          </InlineField>
        </InlineFieldRow>
      )}

      {fields.has('period') && (
        <InlineFieldRow>
          <InlineField
            label="Period"
            labelWidth={LABEL_WIDTH}
            tooltip="Cohorts by the period of each contact's first inbound message in the whole store (filters do not change it); weeks start on Monday."
          >
            <div aria-label={Components.QueryEditor.period}>
              <RadioButtonGroup
                options={RETENTION_PERIODS.map((p) => ({ label: p, value: p }))}
                value={query.period}
                onChange={(v) => set('period', v)}
              />
            </div>
          </InlineField>
        </InlineFieldRow>
      )}

      {fields.has('groupBy') && (
        <InlineFieldRow>
          <InlineField
            label="Group by"
            labelWidth={LABEL_WIDTH}
            grow
            htmlFor="blueticks-groupby"
            tooltip={
              shape === 'ab'
                ? 'A/B always splits by variant; these dimensions split further.'
                : 'One series (or row) per combination; rows missing a dimension form their own group "(none)".'
            }
          >
            <MultiSelect<string>
              inputId="blueticks-groupby"
              aria-label={Components.QueryEditor.groupBy}
              options={groupByOptions}
              value={(query.groupBy ?? []).map((id) => optionFor(groupByOptions, id))}
              allowCustomValue
              placeholder="No grouping"
              onChange={(selected: Array<SelectableValue<string>>) => set('groupBy', selectedValues(selected))}
            />
          </InlineField>
        </InlineFieldRow>
      )}

      {fields.has('filters') && (
        <FiltersEditor
          datasource={datasource}
          dimensions={dimensions}
          filters={query.filters ?? []}
          onChange={(filters) => set('filters', filters)}
        />
      )}

      {fields.has('rawSql') && <SqlEditor query={query} onChange={change} />}

      <InlineFieldRow>
        {fields.has('bucket') && (
          <InlineField
            label="Bucket"
            labelWidth={LABEL_WIDTH}
            htmlFor="blueticks-bucket"
            tooltip="Width of a time bucket. Auto: the panel's interval, widened to stay within max data points. Buckets under a day align to UTC; a day or more starts at local midnight in the time zone."
          >
            <Select<string>
              inputId="blueticks-bucket"
              aria-label={Components.QueryEditor.bucket}
              options={BUCKET_OPTIONS}
              value={optionFor(BUCKET_OPTIONS, query.bucket ?? '')}
              allowCustomValue
              width={12}
              onChange={(v) => set('bucket', v.value)}
            />
          </InlineField>
        )}
        {fields.has('limit') && <LimitField value={query.limit} onChange={(limit) => set('limit', limit)} />}
        {fields.has('timezone') && (
          <InlineField
            label="Time zone"
            labelWidth={LABEL_WIDTH}
            htmlFor="blueticks-timezone"
            tooltip="IANA zone for buckets of a day or more, for hour_of_day and day_of_week, and for $__timeGroup. Empty: UTC."
          >
            <Select<string>
              inputId="blueticks-timezone"
              aria-label={Components.QueryEditor.timezone}
              options={TIMEZONE_OPTIONS}
              value={query.timezone ? optionFor(TIMEZONE_OPTIONS, query.timezone) : null}
              allowCustomValue
              isClearable
              placeholder="UTC"
              width={28}
              onChange={(v) => set('timezone', v?.value)}
            />
          </InlineField>
        )}
      </InlineFieldRow>

      {shape !== 'sql' && (
        <div data-testid={Components.QueryEditor.timeHelp} style={{ fontSize: '12px', opacity: 0.8, marginBottom: 8 }}>
          {TIME_SEMANTICS_HELP}
        </div>
      )}

      {problems.length > 0 && (
        <Alert title="This query is not complete" severity="warning" data-testid={Components.QueryEditor.problems}>
          <ul>
            {problems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        </Alert>
      )}
    </div>
  );
}

/** The selected metrics' definitions, so what a number means is on screen, not only in a menu. */
function MetricDefinitions({ ids, byId }: { ids: string[]; byId: Map<string, MetricDef> }) {
  const defs = ids.map((id) => byId.get(id)).filter((m): m is MetricDef => Boolean(m));
  if (defs.length === 0) {
    return null;
  }
  return (
    <ul data-testid={Components.QueryEditor.definitions} style={{ fontSize: '12px', margin: '0 0 8px 16px' }}>
      {defs.map((m) => (
        <li key={m.id}>
          <strong>{m.name}</strong> ({unitLabel(m)}
          {m.timeSemantics ? `, ${m.timeSemantics}` : ''}): {m.description}
        </li>
      ))}
    </ul>
  );
}

function LimitField({ value, onChange }: { value?: number; onChange: (limit?: number) => void }) {
  const [text, setText] = useState(value === undefined ? '' : String(value));
  const [error, setError] = useState<string>();

  const commit = () => {
    const t = text.trim();
    if (t === '') {
      setError(undefined);
      onChange(undefined);
      return;
    }
    const n = Number(t);
    if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) {
      setError(`A whole number from 1 to ${MAX_LIMIT}`);
      return;
    }
    setError(undefined);
    if (n !== value) {
      onChange(n);
    }
  };

  return (
    <InlineField
      label="Limit"
      labelWidth={LABEL_WIDTH}
      htmlFor="blueticks-limit"
      invalid={Boolean(error)}
      error={error}
      tooltip={`Top-N groups by the first metric over the whole range; the rest are dropped. Default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT}.`}
    >
      <Input
        id="blueticks-limit"
        aria-label={Components.QueryEditor.limit}
        value={text}
        placeholder={String(DEFAULT_LIMIT)}
        width={10}
        onChange={(e) => setText(e.currentTarget.value)}
        onBlur={commit}
      />
    </InlineField>
  );
}

function SqlEditor({ query, onChange }: { query: BlueTicksQuery; onChange: (q: BlueTicksQuery) => void }) {
  return (
    <div>
      <Alert title="Read-only SQL" severity="info" data-testid={Components.QueryEditor.sql.readOnly}>
        One SELECT over the view <code>events</code> (the columns of the event model). Writing, attaching, loading
        extensions, reading files and changing settings are refused. A result with a time column is a time
        series.
      </Alert>
      <div data-testid={Components.QueryEditor.sql.editor}>
        <CodeEditor
          language="sql"
          value={query.rawSql ?? ''}
          height={200}
          showLineNumbers
          showMiniMap={false}
          onBlur={(rawSql) => rawSql !== (query.rawSql ?? '') && onChange(setField(query, 'rawSql', rawSql))}
          onSave={(rawSql) => onChange(setField(query, 'rawSql', rawSql))}
        />
      </div>
      <details data-testid={Components.QueryEditor.sql.macros} open>
        <summary>Macros</summary>
        <table>
          <tbody>
            {SQL_MACROS.map(([macro, meaning]) => (
              <tr key={macro}>
                <td>
                  <code>{macro}</code>
                </td>
                <td>{meaning}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <div>
          Dashboard variables: a multi-value or All variable becomes a quoted list, e.g.{' '}
          <code>campaign IN ($campaign)</code>; a single-value variable is inserted as it is.
        </div>
      </details>
    </div>
  );
}
