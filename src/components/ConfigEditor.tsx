import React, { useState } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { Field, FieldSet, Input, SecretInput } from '@grafana/ui';

import { BlueTicksOptions, BlueTicksSecureOptions, LimitDef, LIMITS, validateFactsDir, validateLimit } from '../types';
import { Components } from './selectors';

type Props = DataSourcePluginOptionsEditorProps<BlueTicksOptions, BlueTicksSecureOptions>;

export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData, secureJsonFields } = options;
  const secureJsonData = (options.secureJsonData ?? {}) as BlueTicksSecureOptions;

  const setJsonData = (patch: Partial<BlueTicksOptions>) => {
    const next: BlueTicksOptions = { ...jsonData, ...patch };
    for (const key of Object.keys(patch) as Array<keyof BlueTicksOptions>) {
      if (next[key] === undefined || next[key] === '') {
        delete next[key];
      }
    }
    onOptionsChange({ ...options, jsonData: next });
  };

  return (
    <>
      <FieldSet label="Store">
        <Field
          label="Store path"
          description="A store directory, a DuckDB file with an events table or view, a Parquet file, or a directory or glob of Parquet files, on the Grafana server. Leave empty to use the embedded demo store."
        >
          <Input
            aria-label={Components.ConfigEditor.storePath}
            value={jsonData.storePath ?? ''}
            placeholder="empty: embedded demo store"
            width={60}
            onChange={(e) => setJsonData({ storePath: e.currentTarget.value.trim() === '' ? undefined : e.currentTarget.value })}
          />
        </Field>
        {jsonData.storePath ? (
          <FactsDirInput value={jsonData.factsDir} onChange={(factsDir) => setJsonData({ factsDir })} />
        ) : (
          <div>Using the embedded demo store: realistic generated data, nothing of yours.</div>
        )}
        <Field
          label="Hash key"
          description="Secret key of the keyed hash that pseudonymises phone numbers at ingest. Keep it stable: changing it makes the same customer a new contact. Stored encrypted, never sent back to the browser."
        >
          <SecretInput
            aria-label={Components.ConfigEditor.hashKey}
            isConfigured={Boolean(secureJsonFields?.hashKey)}
            value={secureJsonData.hashKey ?? ''}
            placeholder="pseudonymisation key"
            width={60}
            onChange={(e) =>
              onOptionsChange({
                ...options,
                secureJsonData: { ...secureJsonData, hashKey: e.currentTarget.value },
              })
            }
            onReset={() =>
              onOptionsChange({
                ...options,
                secureJsonFields: { ...secureJsonFields, hashKey: false },
                secureJsonData: { ...secureJsonData, hashKey: '' },
              })
            }
          />
        </Field>
      </FieldSet>
      <FieldSet label="Limits">
        {LIMITS.map((def) => (
          <LimitInput
            key={def.key}
            def={def}
            value={jsonData[def.key]}
            onChange={(value) => setJsonData({ [def.key]: value })}
          />
        ))}
      </FieldSet>
    </>
  );
}

interface FactsDirProps {
  value?: string;
  onChange: (value?: string) => void;
}

/** The facts directory: written to jsonData trimmed when valid, removed when empty; an invalid entry is shown, not saved. */
function FactsDirInput({ value, onChange }: FactsDirProps) {
  const [text, setText] = useState(value ?? '');
  const error = validateFactsDir(text);

  return (
    <Field
      label="Facts directory"
      description={
        'Where the plugin keeps the facts it derives from the store, so that a restart of the plugin serves them at once instead of rebuilding them (minutes for a large store). Empty: blueticks-facts beside Grafana\'s plugins directory (/var/lib/grafana/blueticks-facts in Grafana\'s packages and images), or facts_dir in the [plugin.blueticks-whatsapp-datasource] section of Grafana\'s configuration. An absolute path: that directory, which must not be writable by other users. "none": do not keep them.'
      }
      invalid={Boolean(error)}
      error={error}
    >
      <Input
        aria-label={Components.ConfigEditor.factsDir}
        value={text}
        placeholder="default: beside Grafana's plugins directory"
        width={60}
        onChange={(e) => {
          const t = e.currentTarget.value;
          setText(t);
          if (!validateFactsDir(t)) {
            onChange(t.trim() === '' ? undefined : t.trim());
          }
        }}
      />
    </Field>
  );
}

interface LimitProps {
  def: LimitDef;
  value?: number;
  onChange: (value?: number) => void;
}

/** A limit: written to jsonData when valid or empty (the default); an invalid entry is shown, not saved. */
function LimitInput({ def, value, onChange }: LimitProps) {
  const [text, setText] = useState(value === undefined ? '' : String(value));
  const error = validateLimit(def, text);

  return (
    <Field label={def.label} description={def.description} invalid={Boolean(error)} error={error}>
      <Input
        data-testid={Components.ConfigEditor.limit(def.key)}
        aria-label={def.label}
        value={text}
        placeholder={`default: ${def.placeholder}`}
        width={20}
        onChange={(e) => {
          const t = e.currentTarget.value;
          setText(t);
          if (!validateLimit(def, t)) {
            onChange(t.trim() === '' ? undefined : Number(t.trim()));
          }
        }}
      />
    </Field>
  );
}
