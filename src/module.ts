import { DataSourcePlugin } from '@grafana/data';

import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { DataSource } from './datasource';
import { BlueTicksOptions, BlueTicksQuery, BlueTicksSecureOptions } from './types';

export const plugin = new DataSourcePlugin<DataSource, BlueTicksQuery, BlueTicksOptions, BlueTicksSecureOptions>(
  DataSource
)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
