import CopyWebpackPlugin from 'copy-webpack-plugin';
import fs from 'fs';
import path from 'path';
import type { Configuration } from 'webpack';

/**
 * create-plugin style build: src/module.ts → dist/module.js as an AMD module with the
 * Grafana-provided packages as externals. The Go build writes dist/gpx_blueticks_* (and
 * its build manifest) into the same folder, so cleaning keeps those.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const SRC = path.join(ROOT, 'src');
const DIST = path.join(ROOT, 'dist');

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const pluginJson = JSON.parse(fs.readFileSync(path.join(ROOT, 'plugin.json'), 'utf8'));

/** Packages Grafana loads once and hands to every plugin. */
const EXTERNALS = [
  'lodash',
  'jquery',
  'moment',
  'slate',
  'emotion',
  '@emotion/react',
  '@emotion/css',
  'prismjs',
  'slate-plain-serializer',
  '@grafana/slate-react',
  'react',
  'react-dom',
  'react-redux',
  'redux',
  'rxjs',
  'react-router',
  'react-router-dom',
  'd3',
  'angular',
  '@grafana/ui',
  '@grafana/runtime',
  '@grafana/data',
];

/** Files the Go build leaves in dist/. */
const KEEP_IN_DIST = /(^|[\\/])(gpx_|go_plugin_build_manifest)/;

const today = () => new Date().toISOString().slice(0, 10);

const config = (env: Record<string, unknown>): Configuration => {
  const production = Boolean(env.production);
  return {
    context: ROOT,
    mode: production ? 'production' : 'development',
    devtool: production ? 'source-map' : 'eval-source-map',
    entry: { module: path.join(SRC, 'module.ts') },
    externals: EXTERNALS,
    output: {
      path: DIST,
      filename: '[name].js',
      library: { type: 'amd' },
      publicPath: `public/plugins/${pluginJson.id}/`,
      uniqueName: pluginJson.id,
      clean: { keep: KEEP_IN_DIST },
    },
    resolve: {
      extensions: ['.ts', '.tsx', '.js', '.jsx'],
      modules: [SRC, 'node_modules'],
    },
    module: {
      rules: [
        {
          test: /\.[tj]sx?$/,
          exclude: /node_modules/,
          use: {
            loader: 'swc-loader',
            options: {
              jsc: {
                target: 'es2015',
                parser: { syntax: 'typescript', tsx: true, decorators: false, dynamicImport: true },
                transform: { react: { runtime: 'classic' } },
              },
            },
          },
        },
        {
          test: /\.(png|jpe?g|gif|svg)$/,
          type: 'asset/resource',
          generator: { filename: 'img/[name][ext]' },
        },
      ],
    },
    plugins: [
      new CopyWebpackPlugin({
        patterns: [
          {
            from: path.join(ROOT, 'plugin.json'),
            to: '.',
            transform: (content) =>
              content.toString().replace(/%VERSION%/g, pkg.version).replace(/%TODAY%/g, today()),
          },
          { from: path.join(ROOT, 'README.md'), to: '.', noErrorOnMissing: true },
          { from: path.join(ROOT, 'CHANGELOG.md'), to: '.', noErrorOnMissing: true },
          { from: path.join(ROOT, 'LICENSE'), to: '.', noErrorOnMissing: true },
          { from: path.join(SRC, 'img'), to: 'img', noErrorOnMissing: true },
          { from: path.join(ROOT, 'dashboards'), to: 'dashboards', noErrorOnMissing: true },
        ],
      }),
    ],
    performance: { hints: false },
    watchOptions: { ignored: ['**/node_modules', '**/dist'] },
  };
};

export default config;
