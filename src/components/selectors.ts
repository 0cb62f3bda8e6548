/**
 * Test ids and labels of the editors, shared by the unit tests and the browser test
 * (tests/browser), so a renamed control breaks one line, not every test.
 */
export const Components = {
  QueryEditor: {
    shape: 'blueticks-query-shape',
    metrics: 'Metrics',
    metric: 'Rate to compare',
    groupBy: 'Group by',
    bucket: 'Bucket',
    limit: 'Limit',
    timezone: 'Time zone',
    period: 'Period',
    problems: 'blueticks-query-problems',
    timeHelp: 'blueticks-time-semantics',
    definitions: 'blueticks-metric-definitions',
    catalogError: 'blueticks-catalog-error',
    sql: {
      editor: 'blueticks-sql-editor',
      macros: 'blueticks-sql-macros',
      readOnly: 'blueticks-sql-read-only',
    },
  },
  Filters: {
    add: 'Add filter',
    row: 'blueticks-filter-row',
    dimension: 'Filter dimension',
    op: 'Filter operator',
    values: 'Filter values',
    remove: 'Remove filter',
  },
  ConfigEditor: {
    storePath: 'Store path',
    factsDir: 'Facts directory',
    hashKey: 'Hash key',
    limit: (key: string) => `blueticks-limit-${key}`,
  },
  VariableQueryEditor: {
    dimension: 'Dimension',
  },
};
