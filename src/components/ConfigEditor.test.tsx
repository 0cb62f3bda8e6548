import React, { useState } from 'react';
import { DataSourceSettings } from '@grafana/data';
import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';

import { BlueTicksOptions, BlueTicksSecureOptions } from '../types';
import { ConfigEditor } from './ConfigEditor';
import { Components } from './selectors';

type Settings = DataSourceSettings<BlueTicksOptions, BlueTicksSecureOptions>;

function setup(jsonData: BlueTicksOptions = {}, secureJsonFields: Record<string, boolean> = {}) {
  const initial = { id: 1, uid: 'x', name: 'Blue Ticks', jsonData, secureJsonFields } as unknown as Settings;
  const onOptionsChange = jest.fn();
  function Harness() {
    const [options, setOptions] = useState(initial);
    return (
      <ConfigEditor
        options={options}
        onOptionsChange={(o) => {
          onOptionsChange(o);
          setOptions(o);
        }}
      />
    );
  }
  render(<Harness />);
  return { onOptionsChange, last: (): Settings => onOptionsChange.mock.calls[onOptionsChange.mock.calls.length - 1][0] };
}

describe('ConfigEditor', () => {
  it('says an empty store path means the embedded demo store, and writes a path', async () => {
    const { last } = setup();
    expect(screen.getByText(/Using the embedded demo store/)).toBeInTheDocument();
    await userEvent.type(screen.getByLabelText(Components.ConfigEditor.storePath), '/var/lib/blueticks');
    expect(last().jsonData).toEqual({ storePath: '/var/lib/blueticks' });
    expect(screen.queryByText(/Using the embedded demo store/)).not.toBeInTheDocument();
    await userEvent.clear(screen.getByLabelText(Components.ConfigEditor.storePath));
    expect(last().jsonData).toEqual({});
  });

  it('asks where to keep the facts only when a store path is set', async () => {
    setup();
    expect(screen.queryByLabelText(Components.ConfigEditor.factsDir)).not.toBeInTheDocument();
    await userEvent.type(screen.getByLabelText(Components.ConfigEditor.storePath), '/var/lib/blueticks');
    const factsDir = screen.getByLabelText(Components.ConfigEditor.factsDir);
    expect(factsDir).toHaveAttribute('placeholder', "default: beside Grafana's plugins directory");
    await userEvent.clear(screen.getByLabelText(Components.ConfigEditor.storePath));
    expect(screen.queryByLabelText(Components.ConfigEditor.factsDir)).not.toBeInTheDocument();
  });

  it('writes the facts directory trimmed and removes it when cleared', async () => {
    const { last } = setup({ storePath: '/var/lib/blueticks' });
    const factsDir = screen.getByLabelText(Components.ConfigEditor.factsDir);
    expect(factsDir).toHaveValue('');
    await userEvent.type(factsDir, '  /var/lib/grafana/facts ');
    expect(last().jsonData).toEqual({ storePath: '/var/lib/blueticks', factsDir: '/var/lib/grafana/facts' });
    await userEvent.clear(factsDir);
    expect(last().jsonData).toStrictEqual({ storePath: '/var/lib/blueticks' });
  });

  it('shows a saved facts directory', () => {
    setup({ storePath: '/var/lib/blueticks', factsDir: 'none' });
    expect(screen.getByLabelText(Components.ConfigEditor.factsDir)).toHaveValue('none');
  });

  it.each([['none'], ['/srv/facts'], ['C:\\ProgramData\\facts'], ['D:/facts']])(
    'accepts %s as the facts directory',
    async (text) => {
      const { last } = setup({ storePath: '/var/lib/blueticks' });
      await userEvent.type(screen.getByLabelText(Components.ConfigEditor.factsDir), text);
      expect(screen.queryByText(/Enter an absolute path/)).not.toBeInTheDocument();
      expect(last().jsonData).toEqual({ storePath: '/var/lib/blueticks', factsDir: text });
    }
  );

  it.each([['facts'], ['./facts'], ['~/facts'], ['None']])(
    'shows why the relative path %s is refused and does not save it',
    async (text) => {
      const { onOptionsChange } = setup({ storePath: '/var/lib/blueticks', factsDir: '/srv/facts' });
      await userEvent.clear(screen.getByLabelText(Components.ConfigEditor.factsDir));
      await userEvent.type(screen.getByLabelText(Components.ConfigEditor.factsDir), text);
      expect(screen.getByText('Enter an absolute path, "none", or leave empty for the default.')).toBeInTheDocument();
      for (const [options] of onOptionsChange.mock.calls) {
        expect(options.jsonData.factsDir).not.toBe(text);
        expect(options.jsonData.factsDir ?? '/').toMatch(/^\//);
      }
    }
  );

  it('keeps the hash key secret: write-only, shown as configured, resettable', async () => {
    const { last } = setup({}, { hashKey: true });
    expect(screen.getByLabelText(Components.ConfigEditor.hashKey)).toHaveValue('configured');
    await userEvent.click(screen.getByRole('button', { name: 'Reset' }));
    expect(last().secureJsonFields).toEqual({ hashKey: false });
    await userEvent.type(screen.getByLabelText(Components.ConfigEditor.hashKey), 's3cret');
    expect(last().secureJsonData).toEqual({ hashKey: 's3cret' });
    expect(last().jsonData).toEqual({});
  });

  it('writes valid limits as numbers and leaves empty ones to the backend default', async () => {
    const { last } = setup({ threads: 8 });
    const timeout = screen.getByTestId(Components.ConfigEditor.limit('queryTimeoutSeconds'));
    expect(timeout).toHaveAttribute('placeholder', 'default: 30');
    await userEvent.type(timeout, '60');
    expect(last().jsonData).toEqual({ threads: 8, queryTimeoutSeconds: 60 });
    await userEvent.clear(screen.getByTestId(Components.ConfigEditor.limit('threads')));
    expect(last().jsonData).toEqual({ queryTimeoutSeconds: 60 });
  });

  it.each([
    ['maxRows', 'abc', 'Enter a positive whole number, or leave empty for the default.'],
    ['memoryLimitMB', '0', 'Enter a positive whole number, or leave empty for the default.'],
    ['threads', '1.5', 'Enter a positive whole number, or leave empty for the default.'],
    ['maxConcurrentQueries', '1000', 'At most 256.'],
    ['queryTimeoutSeconds', '86400', 'At most 3,600.'],
  ])('shows why %s = %s is refused and does not save it', async (key, text, message) => {
    const { onOptionsChange } = setup();
    await userEvent.type(screen.getByTestId(Components.ConfigEditor.limit(key)), text);
    expect(screen.getByText(message)).toBeInTheDocument();
    for (const [options] of onOptionsChange.mock.calls) {
      expect(Number.isInteger(options.jsonData[key] ?? 1)).toBe(true);
      expect(options.jsonData[key] ?? 1).toBeGreaterThan(0);
    }
  });
});
