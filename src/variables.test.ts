import { DataQueryRequest, DataQueryResponse, dateTime } from '@grafana/data';
import { lastValueFrom, of } from 'rxjs';

import { makeDataSource } from './test/fakes';
import { BlueTicksQuery } from './types';
import { BlueTicksVariableSupport } from './variables';

describe('BlueTicksVariableSupport', () => {
  it('runs values queries, also when Grafana calls query without its object (as Grafana 10.0 does)', async () => {
    const { ds } = makeDataSource([]);
    const sent: Array<DataQueryRequest<BlueTicksQuery>> = [];
    jest.spyOn(ds, 'query').mockImplementation((request) => {
      sent.push(request);
      return of({ data: [] } as DataQueryResponse);
    });
    const variables = ds.variables as BlueTicksVariableSupport;
    const { query } = variables; // unbound, like runRequest(ds, request, ds.variables.query)
    const request = {
      targets: [{ refId: 'A', dimension: 'segment', metrics: ['sent'] } as BlueTicksQuery],
      range: { from: dateTime(0), to: dateTime(1), raw: { from: 'now-1h', to: 'now' } },
    } as unknown as DataQueryRequest<BlueTicksQuery>;

    await lastValueFrom(query(request));

    expect(sent).toHaveLength(1);
    expect(sent[0].targets).toEqual([{ refId: 'A', queryType: 'values', dimension: 'segment' }]);
  });
});
