import { CustomVariableSupport, DataQueryRequest, DataQueryResponse } from '@grafana/data';
import { Observable } from 'rxjs';

import { VariableQueryEditor } from './components/VariableQueryEditor';
import type { DataSource } from './datasource';
import { asQuery, pruneQuery } from './query';
import { BlueTicksQuery } from './types';

/**
 * Template variables list the distinct values of one dimension (`queryType: "values"`),
 * optionally narrowed by filters that may use other variables (`country in $country`).
 * They go through the data source's normal query path, so `applyTemplateVariables`
 * expands those filters like everywhere else.
 */
export class BlueTicksVariableSupport extends CustomVariableSupport<DataSource, BlueTicksQuery> {
  editor = VariableQueryEditor;

  constructor(private readonly datasource: DataSource) {
    super();
    // Grafana 10.0 calls `datasource.variables.query` unbound (runRequest(ds, request,
    // ds.variables.query)); without this, `this` is undefined there and no variable loads.
    this.query = this.query.bind(this);
  }

  query(request: DataQueryRequest<BlueTicksQuery>): Observable<DataQueryResponse> {
    const targets = request.targets.map((t, i) =>
      pruneQuery({ ...asQuery(t, `variable-${i}`), queryType: 'values' })
    );
    return this.datasource.query({ ...request, targets });
  }
}
