import React, { useState } from 'react';
import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import { QueryEditor } from '../components/QueryEditor';
import { VariableQueryEditor } from '../components/VariableQueryEditor';
import { DataSource } from '../datasource';
import { BlueTicksQuery } from '../types';

type Editor = typeof QueryEditor | typeof VariableQueryEditor;

/**
 * Renders a query editor the way Grafana does: controlled, the query held by the parent.
 * `queries()` lists every query the editor wrote, `last()` the newest.
 */
export function renderEditor(Component: Editor, ds: DataSource, initial: BlueTicksQuery) {
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  function Harness() {
    const [query, setQuery] = useState(initial);
    return (
      <Component
        datasource={ds}
        query={query}
        onRunQuery={onRunQuery}
        onChange={(q: BlueTicksQuery) => {
          onChange(q);
          setQuery(q);
        }}
      />
    );
  }
  const utils = render(<Harness />);
  return {
    ...utils,
    onChange,
    onRunQuery,
    last: (): BlueTicksQuery => onChange.mock.calls[onChange.mock.calls.length - 1]?.[0],
  };
}

/** Opens a react-select by its label and picks the option showing `text`. */
export async function pick(label: string, text: string | RegExp) {
  const input = screen.getByLabelText(label);
  await userEvent.click(input);
  const option = await waitFor(() => {
    const found = screen.getAllByText(text).find((el) => el.closest('[aria-label="Select options menu"], [role="listbox"], [id*="listbox"]'));
    if (!found) {
      throw new Error(`option ${String(text)} not shown`);
    }
    return found;
  });
  await userEvent.click(option);
}
