import {
  AdHocVariableFilter,
  CoreApp,
  DataSourceInstanceSettings,
  MetricFindValue,
  ScopedVars,
} from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv, TemplateSrv } from '@grafana/runtime';

import { isRunnable, pruneQuery } from './query';
import {
  BlueTicksOptions,
  BlueTicksQuery,
  DEFAULT_QUERY,
  DimensionDef,
  Filter,
  MetricDef,
  ValuesResponse,
} from './types';
import { BlueTicksVariableSupport } from './variables';

/** Grafana's value for "All" in a variable's current selection. */
const ALL_VALUE = '$__all';

/** Grafana's variable syntaxes: `$var`, `[[var]]`, `${var}`, `${var:format}`. */
const VARIABLE_PATTERN = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}/g;

interface VariableLike {
  multi?: boolean;
  includeAll?: boolean;
}

function variableNames(text: string): string[] {
  return Array.from(text.matchAll(VARIABLE_PATTERN), (m) => m[1] ?? m[2] ?? m[4]);
}

/** True when the whole string is one variable reference (so it may expand to a list). */
function isSingleReference(text: string): boolean {
  const matches = Array.from(text.trim().matchAll(VARIABLE_PATTERN));
  return matches.length === 1 && matches[0][0] === text.trim();
}

/** Formats a variable for SQL: a quoted list for multi-value or All, the raw value otherwise. */
function sqlFormat(value: string | string[], variable?: VariableLike): string {
  const quote = (v: string) => `'${String(v).replace(/'/g, "''")}'`;
  if (Array.isArray(value)) {
    return value.map(quote).join(',');
  }
  return variable?.multi || variable?.includeAll ? quote(value) : value;
}

const listFormat = (value: string | string[]) => JSON.stringify(Array.isArray(value) ? value : [value]);

export class DataSource extends DataSourceWithBackend<BlueTicksQuery, BlueTicksOptions> {
  private metricsPromise?: Promise<MetricDef[]>;
  private dimensionsPromise?: Promise<DimensionDef[]>;

  constructor(
    instanceSettings: DataSourceInstanceSettings<BlueTicksOptions>,
    private readonly templateSrv: TemplateSrv = getTemplateSrv()
  ) {
    super(instanceSettings);
    this.variables = new BlueTicksVariableSupport(this);
  }

  getDefaultQuery(_app: CoreApp): Partial<BlueTicksQuery> {
    return DEFAULT_QUERY;
  }

  /** Half-written queries (no metric yet, empty SQL) are not sent. */
  filterQuery(query: BlueTicksQuery): boolean {
    return !query.hide && isRunnable(query);
  }

  // ---- Backend resources (docs/ARCHITECTURE.md, Resource API) ----

  /** The KPI catalog, fetched once per data source instance. */
  getMetrics(): Promise<MetricDef[]> {
    if (!this.metricsPromise) {
      this.metricsPromise = this.getResource('metrics').then((r: { metrics?: MetricDef[] }) => r.metrics ?? []);
      this.metricsPromise.catch(() => (this.metricsPromise = undefined));
    }
    return this.metricsPromise;
  }

  getDimensions(): Promise<DimensionDef[]> {
    if (!this.dimensionsPromise) {
      this.dimensionsPromise = this.getResource('dimensions').then(
        (r: { dimensions?: DimensionDef[] }) => r.dimensions ?? []
      );
      this.dimensionsPromise.catch(() => (this.dimensionsPromise = undefined));
    }
    return this.dimensionsPromise;
  }

  /** Distinct values of a dimension containing `q` (case-insensitive). */
  async getValues(dimension: string, q = '', limit = 100): Promise<ValuesResponse> {
    const r: ValuesResponse = await this.getResource('values', { dimension, q, limit });
    return { dimension, values: r.values ?? [], truncated: Boolean(r.truncated) };
  }

  /** Names of the dashboard's variables, as `$name`, for value suggestions in the editors. */
  getVariableNames(): string[] {
    return this.templateSrv.getVariables().map((v) => `$${v.name}`);
  }

  // ---- Ad hoc filters ----

  async getTagKeys(): Promise<MetricFindValue[]> {
    const dims = await this.getDimensions();
    return dims.map((d) => ({ text: d.id, value: d.id }));
  }

  async getTagValues(options: { key: string }): Promise<MetricFindValue[]> {
    const { values } = await this.getValues(options.key, '', 1000);
    return values.map((v) => ({ text: v, value: v }));
  }

  // ---- Template variables: the only place they are touched ----

  /**
   * Expands variables in every field: lists (`metrics`, `groupBy`, `filters[].values`)
   * take each value of a multi-value variable; a filter whose values select "All" (or end
   * up empty) is removed; `rawSql` gets quoted lists and `$__conditionalAll` resolved;
   * other strings take the plain value. Ad hoc filters become `in` / `not_in` filters.
   */
  applyTemplateVariables(
    query: BlueTicksQuery,
    scopedVars: ScopedVars,
    adhocFilters?: AdHocVariableFilter[]
  ): BlueTicksQuery {
    const next: BlueTicksQuery = { ...query };
    const single = (text?: string) => (text === undefined ? undefined : this.templateSrv.replace(text, scopedVars));

    if (query.metrics) {
      next.metrics = this.expandList(query.metrics, scopedVars);
    }
    if (query.groupBy) {
      next.groupBy = this.expandList(query.groupBy, scopedVars);
    }
    const filters = [...(query.filters ?? []), ...toFilters(adhocFilters)];
    if (filters.length > 0) {
      next.filters = this.expandFilters(filters, scopedVars);
    }
    next.metric = single(query.metric);
    next.dimension = single(query.dimension);
    next.bucket = single(query.bucket);
    next.timezone = single(query.timezone);
    if (query.rawSql !== undefined) {
      next.rawSql = this.interpolateSql(query.rawSql, scopedVars);
    }
    return pruneQuery(next);
  }

  interpolateVariablesInQueries(queries: BlueTicksQuery[], scopedVars: ScopedVars): BlueTicksQuery[] {
    return queries.map((q) => ({ ...this.applyTemplateVariables(q, scopedVars), datasource: this.getRef() }));
  }

  private isAll(name: string, scopedVars: ScopedVars): boolean {
    const selected = (value: unknown) =>
      value === ALL_VALUE || (Array.isArray(value) && value.includes(ALL_VALUE));
    const scoped = scopedVars?.[name];
    if (scoped) {
      return selected(scoped.value);
    }
    const variable = this.templateSrv.getVariables().find((v) => v.name === name) as
      | { current?: { value?: unknown } }
      | undefined;
    return selected(variable?.current?.value);
  }

  /** One entry → its values: a list for a reference to a multi-value variable, else one string. */
  private expand(text: string, scopedVars: ScopedVars): string[] {
    if (isSingleReference(text)) {
      const replaced = this.templateSrv.replace(text, scopedVars, listFormat);
      try {
        const parsed: unknown = JSON.parse(replaced);
        if (Array.isArray(parsed)) {
          return parsed.map(String);
        }
      } catch {
        // Not a known variable: Grafana left the text as it was.
      }
      return [replaced];
    }
    return [this.templateSrv.replace(text, scopedVars, 'csv')];
  }

  private expandList(entries: string[], scopedVars: ScopedVars): string[] {
    return unique(entries.flatMap((e) => this.expand(e, scopedVars))).filter((v) => v !== '');
  }

  private expandFilters(filters: Filter[], scopedVars: ScopedVars): Filter[] {
    const out: Filter[] = [];
    for (const f of filters) {
      const dimension = this.templateSrv.replace(f.dimension ?? '', scopedVars);
      const refersToAll = (f.values ?? []).some((v) => variableNames(v).some((n) => this.isAll(n, scopedVars)));
      if (!dimension || refersToAll) {
        continue;
      }
      const values = this.expandList(f.values ?? [], scopedVars);
      if (values.length > 0) {
        out.push({ dimension, op: f.op === 'not_in' ? 'not_in' : 'in', values });
      }
    }
    return out;
  }

  /**
   * `$__conditionalAll(condition, $var)` becomes `1=1` when `$var` selects All, else the
   * condition; then variables are replaced (multi-value and All as quoted lists).
   */
  private interpolateSql(sql: string, scopedVars: ScopedVars): string {
    const resolved = replaceConditionalAll(sql, (variable) => {
      const names = variableNames(variable);
      if (names.length !== 1) {
        return undefined;
      }
      return this.isAll(names[0], scopedVars);
    });
    // $__interval and $__interval_ms are the backend's macros (a DuckDB INTERVAL, a
    // number); Grafana would otherwise put its own text ("5m") there from the scoped vars.
    const { __interval: _i, __interval_ms: _ms, ...vars } = scopedVars ?? {};
    return this.templateSrv.replace(resolved, vars, sqlFormat);
  }
}

function unique(values: string[]): string[] {
  return Array.from(new Set(values));
}

function toFilters(adhoc?: AdHocVariableFilter[]): Filter[] {
  return (adhoc ?? []).flatMap((f): Filter[] => {
    const values = f.values?.length ? f.values : [f.value];
    if (f.operator === '=' || f.operator === '=|') {
      return [{ dimension: f.key, op: 'in', values }];
    }
    if (f.operator === '!=' || f.operator === '!=|') {
      return [{ dimension: f.key, op: 'not_in', values }];
    }
    return [];
  });
}

const CONDITIONAL_ALL = '$__conditionalAll(';

/**
 * Replaces each `$__conditionalAll(condition, $var)`: `isAll($var)` true → `1=1`, false →
 * the condition, undefined (not a single variable) → left for the backend. The condition
 * may hold parentheses and quoted commas; the last top-level comma separates the variable.
 */
export function replaceConditionalAll(sql: string, isAll: (variable: string) => boolean | undefined): string {
  let out = '';
  let pos = 0;
  for (;;) {
    const start = sql.indexOf(CONDITIONAL_ALL, pos);
    if (start < 0) {
      return out + sql.slice(pos);
    }
    const argsStart = start + CONDITIONAL_ALL.length;
    let depth = 1;
    let quote = '';
    let lastComma = -1;
    let i = argsStart;
    for (; i < sql.length && depth > 0; i++) {
      const c = sql[i];
      if (quote) {
        if (c === quote) {
          quote = '';
        }
      } else if (c === "'" || c === '"') {
        quote = c;
      } else if (c === '(') {
        depth++;
      } else if (c === ')') {
        depth--;
      } else if (c === ',' && depth === 1) {
        lastComma = i;
      }
    }
    if (depth > 0 || lastComma < 0) {
      // Unbalanced or a single argument: leave the rest to the backend's error message.
      return out + sql.slice(pos);
    }
    const condition = sql.slice(argsStart, lastComma).trim();
    const variable = sql.slice(lastComma + 1, i - 1).trim();
    const all = isAll(variable);
    out += sql.slice(pos, start) + (all === undefined ? sql.slice(start, i) : all ? '1=1' : condition);
    pos = i;
  }
}
