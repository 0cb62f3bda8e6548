import React from 'react';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import { makeDataSource } from '../test/fakes';
import { pick, renderEditor } from '../test/render';
import { BlueTicksQuery } from '../types';
import { QueryEditor } from './QueryEditor';
import { Components } from './selectors';

// Monaco does not run in jsdom: a textarea stands in for the code editor.
jest.mock('@grafana/ui', () => ({
  ...jest.requireActual('@grafana/ui'),
  CodeEditor: ({ value, onBlur }: { value: string; onBlur?: (v: string) => void }) => (
    <textarea aria-label="SQL" defaultValue={value} onBlur={(e) => onBlur?.(e.currentTarget.value)} />
  ),
}));

const setup = (query: Partial<BlueTicksQuery>, fail: string[] = []) => {
  const { ds, getResource } = makeDataSource([{ name: 'country', current: 'IT' }], fail);
  return { ...renderEditor(QueryEditor, ds, { refId: 'A', ...query }), getResource };
};

/** Waits until the catalog has loaded: the selected metric shows its name instead of its id. */
const catalogLoaded = (name = 'Messages sent') => waitFor(() => expect(screen.getAllByText(name)[0]).toBeInTheDocument());

describe('QueryEditor', () => {
  it('offers the catalog grouped by area with unit and definition, and writes the chosen metrics', async () => {
    const { last, onRunQuery } = setup({ queryType: 'timeseries', metrics: ['sent'] });
    await catalogLoaded();
    await userEvent.click(screen.getByLabelText(Components.QueryEditor.metrics));
    expect(await screen.findByText('Churn & quality')).toBeInTheDocument();
    expect(screen.getByText(/percent · send time — read \/ delivered, message cohort/)).toBeInTheDocument();
    await userEvent.click(screen.getByText('Read rate'));
    expect(last()).toEqual({ refId: 'A', queryType: 'timeseries', metrics: ['sent', 'read_rate'] });
    expect(onRunQuery).toHaveBeenCalled();
  });

  it('shows the definitions of the chosen metrics, and gives an untyped query its shape', async () => {
    const { last } = setup({ metrics: ['sent', 'block_rate'] });
    await catalogLoaded();
    const defs = screen.getByTestId(Components.QueryEditor.definitions);
    expect(defs).toHaveTextContent('Block rate (percent, event time): blocked events / messages delivered, same bucket');
    await pick(Components.QueryEditor.bucket, '1d');
    expect(last()).toEqual({ refId: 'A', queryType: 'timeseries', metrics: ['sent', 'block_rate'], bucket: '1d' });
  });

  it('explains the two time semantics', async () => {
    setup({ queryType: 'timeseries', metrics: ['sent'] });
    await catalogLoaded();
    const help = screen.getByTestId(Components.QueryEditor.timeHelp);
    expect(help).toHaveTextContent(/credited to the send time/);
    expect(help).toHaveTextContent(/newest buckets still move/);
    expect(help).toHaveTextContent(/Events .* count at their own time/);
  });

  it('writes group by, bucket and limit as in the query model', async () => {
    const { last } = setup({ queryType: 'timeseries', metrics: ['delivery_rate'] });
    await catalogLoaded('Delivery rate');
    await pick(Components.QueryEditor.groupBy, 'Campaign');
    await pick(Components.QueryEditor.bucket, '1h');
    const limit = screen.getByLabelText(Components.QueryEditor.limit);
    await userEvent.type(limit, '10');
    await userEvent.tab();
    expect(last()).toEqual({
      refId: 'A',
      queryType: 'timeseries',
      metrics: ['delivery_rate'],
      groupBy: ['campaign'],
      bucket: '1h',
      limit: 10,
    });
    await pick(Components.QueryEditor.bucket, 'auto');
    expect(last()).not.toHaveProperty('bucket');
  });

  it('shows values it does not list, such as variables, and offers variables to group by', async () => {
    const { last } = setup({ queryType: 'timeseries', metrics: ['sent'], groupBy: ['$dims'], bucket: '$bucket', timezone: 'Asia/Kolkata' });
    await catalogLoaded();
    expect(screen.getByText('$dims')).toBeInTheDocument();
    expect(screen.getByText('$bucket')).toBeInTheDocument();
    expect(screen.getByText('Asia/Kolkata')).toBeInTheDocument();
    await pick(Components.QueryEditor.groupBy, '$country');
    expect(last().groupBy).toEqual(['$dims', '$country']);
  });

  it('refuses a limit outside 1..500 and says why', async () => {
    const { onChange } = setup({ queryType: 'table', metrics: ['sent'] });
    await catalogLoaded();
    await userEvent.type(screen.getByLabelText(Components.QueryEditor.limit), '600');
    await userEvent.tab();
    expect(screen.getByText('A whole number from 1 to 500')).toBeInTheDocument();
    expect(onChange).not.toHaveBeenCalled();
  });

  it('switching to A/B carries a comparable rate over and drops what A/B does not take', async () => {
    const { last } = setup({ queryType: 'timeseries', metrics: ['sent', 'read_rate'], bucket: '1h', limit: 5 });
    await catalogLoaded();
    await userEvent.click(within(screen.getByTestId(Components.QueryEditor.shape)).getByText('A/B test'));
    expect(last()).toEqual({ refId: 'A', queryType: 'ab', metric: 'read_rate' });
    await userEvent.click(screen.getByLabelText(Components.QueryEditor.metric));
    expect(await screen.findByText('Delivery rate')).toBeInTheDocument();
    expect(screen.queryByText('Block rate')).not.toBeInTheDocument();
    expect(screen.queryByText('Messages sent')).not.toBeInTheDocument();
  });

  it('funnel takes no metrics; retention gets a period', async () => {
    const { last } = setup({ queryType: 'timeseries', metrics: ['sent'], groupBy: ['campaign'] });
    await catalogLoaded();
    const shapes = within(screen.getByTestId(Components.QueryEditor.shape));
    await userEvent.click(shapes.getByText('Funnel'));
    expect(last()).toEqual({ refId: 'A', queryType: 'funnel', groupBy: ['campaign'] });
    expect(screen.queryByLabelText(Components.QueryEditor.metrics)).not.toBeInTheDocument();
    await userEvent.click(shapes.getByText('Retention'));
    expect(last()).toEqual({ refId: 'A', queryType: 'retention', period: 'week' });
    await userEvent.click(screen.getByText('month'));
    expect(last()).toEqual({ refId: 'A', queryType: 'retention', period: 'month' });
  });

  it('explains invalid combinations before the query runs', async () => {
    setup({ queryType: 'table', metrics: ['quality_rating'], groupBy: ['campaign'] });
    await catalogLoaded('Quality rating');
    expect(screen.getByTestId(Components.QueryEditor.problems)).toHaveTextContent(
      /Quality rating groups only by business_number/
    );
  });

  it('asks for a metric when there is none, and for a rate in A/B', async () => {
    const first = setup({ queryType: 'timeseries' });
    await waitFor(() => expect(screen.getByTestId(Components.QueryEditor.problems)).toHaveTextContent('Pick at least one metric.'));
    first.unmount();
    setup({ queryType: 'ab' });
    await waitFor(() => expect(screen.getByTestId(Components.QueryEditor.problems)).toHaveTextContent('Pick the rate to compare'));
  });

  it('shows an error when the catalog cannot be loaded', async () => {
    setup({ queryType: 'timeseries', metrics: ['sent'] }, ['metrics']);
    expect(await screen.findByTestId(Components.QueryEditor.catalogError)).toHaveTextContent('metrics exploded');
  });

  it('adds a filter by its dimension and suggests values from the backend and dashboard variables', async () => {
    const { last, getResource } = setup({ queryType: 'timeseries', metrics: ['sent'] });
    await catalogLoaded();
    await pick(Components.Filters.add, 'Country');
    expect(last().filters).toEqual([{ dimension: 'country', op: 'in', values: [] }]);
    await userEvent.click(screen.getByLabelText(Components.Filters.values));
    expect(await screen.findByText('$country')).toBeInTheDocument();
    await userEvent.click(await screen.findByText('DE'));
    expect(getResource).toHaveBeenCalledWith('values', { dimension: 'country', q: '', limit: 100 });
    expect(last().filters).toEqual([{ dimension: 'country', op: 'in', values: ['DE'] }]);
    await pick(Components.Filters.op, 'not in');
    expect(last().filters).toEqual([{ dimension: 'country', op: 'not_in', values: ['DE'] }]);
    await userEvent.click(screen.getByLabelText(Components.Filters.remove));
    expect(last()).toEqual({ refId: 'A', queryType: 'timeseries', metrics: ['sent'] });
  });

  it('says when filter values cannot be loaded', async () => {
    setup({ queryType: 'table', metrics: ['sent'], filters: [{ dimension: 'country', op: 'in', values: [] }] }, ['values']);
    expect(await screen.findByRole('alert')).toHaveTextContent('Could not load values of country: values exploded');
  });

  it('raw SQL: documents the macros and read-only rule, writes rawSql on blur', async () => {
    const { last } = setup({ queryType: 'timeseries', metrics: ['sent'] });
    await catalogLoaded();
    await userEvent.click(within(screen.getByTestId(Components.QueryEditor.shape)).getByText('Raw SQL'));
    expect(last()).toEqual({ refId: 'A', queryType: 'sql' });
    expect(screen.getByTestId(Components.QueryEditor.sql.readOnly)).toHaveTextContent(/One SELECT over the view events/);
    const macros = screen.getByTestId(Components.QueryEditor.sql.macros);
    for (const m of ['$__timeFilter(ts)', '$__timeFrom', '$__timeTo', "$__timeGroup(ts, '1h')", '$__unixEpochFilter(col)', '$__conditionalAll(condition, $var)', '$__interval']) {
      expect(within(macros).getByText(m)).toBeInTheDocument();
    }
    const sql = 'SELECT count(*) FROM events WHERE $__timeFilter(ts)';
    await userEvent.type(screen.getByLabelText('SQL'), sql.replace(/[{[]/g, '$&$&'));
    await userEvent.tab();
    expect(last()).toEqual({ refId: 'A', queryType: 'sql', rawSql: sql });
  });
});
