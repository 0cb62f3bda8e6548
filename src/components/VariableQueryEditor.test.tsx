import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { DataQueryRequest, dateTime } from '@grafana/data';
import { lastValueFrom, of } from 'rxjs';

import { makeDataSource } from '../test/fakes';
import { pick, renderEditor } from '../test/render';
import { BlueTicksQuery } from '../types';
import { VariableQueryEditor } from './VariableQueryEditor';
import { Components } from './selectors';

describe('VariableQueryEditor', () => {
  it('writes a values query for the chosen dimension, filtered by another variable', async () => {
    const { ds } = makeDataSource([{ name: 'campaign', current: 'welcome' }]);
    const { last } = renderEditor(VariableQueryEditor, ds, { refId: 'A' });
    await waitFor(() => expect(screen.getByLabelText(Components.VariableQueryEditor.dimension)).toBeEnabled());
    await pick(Components.VariableQueryEditor.dimension, 'Country');
    expect(last()).toEqual({ refId: 'A', queryType: 'values', dimension: 'country' });
    await pick(Components.Filters.add, 'Campaign');
    await userEvent.click(screen.getByLabelText(Components.Filters.values));
    await userEvent.click(await screen.findByText('$campaign'));
    expect(last()).toEqual({
      refId: 'A',
      queryType: 'values',
      dimension: 'country',
      filters: [{ dimension: 'campaign', op: 'in', values: ['$campaign'] }],
    });
  });

  it('takes over a variable whose saved query is still a string', async () => {
    const { ds } = makeDataSource();
    const { last } = renderEditor(VariableQueryEditor, ds, '' as unknown as BlueTicksQuery);
    await pick(Components.VariableQueryEditor.dimension, 'Campaign');
    expect(last()).toEqual({ refId: 'variable', queryType: 'values', dimension: 'campaign' });
  });

  it('shows an error when the dimensions cannot be loaded', async () => {
    const { ds } = makeDataSource([], ['dimensions']);
    renderEditor(VariableQueryEditor, ds, { refId: 'A' });
    expect(await screen.findByText('dimensions exploded')).toBeInTheDocument();
  });
});

describe('variable support', () => {
  it('runs values queries through the data source query path', async () => {
    const { ds } = makeDataSource();
    const query = jest.spyOn(ds, 'query').mockReturnValue(of({ data: [] }));
    const request = {
      targets: [{ refId: 'A', dimension: 'campaign', metrics: ['ignored'] }],
      range: { from: dateTime(0), to: dateTime(1000), raw: { from: 'now-1h', to: 'now' } },
    } as unknown as DataQueryRequest<BlueTicksQuery>;
    const variables = ds.variables as unknown as { query: (r: DataQueryRequest<BlueTicksQuery>) => ReturnType<typeof ds.query> };
    await lastValueFrom(variables.query(request));
    expect(query.mock.calls[0][0].targets).toEqual([{ refId: 'A', queryType: 'values', dimension: 'campaign' }]);
  });
});
