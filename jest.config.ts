import type { Config } from 'jest';

/** ES-module-only packages that @grafana/ui pulls in; jest must transform them. */
const ES_MODULES = [
  '@grafana/schema',
  '@wojtekmaj',
  'd3',
  'd3-[a-z-]+',
  'delaunator',
  'get-user-locale',
  'internmap',
  'marked',
  'memoize',
  'mimic-function',
  'ol',
  'react-calendar',
  'react-colorful',
  'robust-predicates',
  'rxjs',
  'uuid',
];

const config: Config = {
  testEnvironment: 'jest-environment-jsdom',
  // Editor tests click through @grafana/ui menus; on a busy 2-core CI machine one can take
  // longer than jest's default 5 s without anything being wrong.
  testTimeout: 30_000,
  roots: ['<rootDir>/src'],
  modulePaths: ['<rootDir>/src'],
  setupFiles: ['<rootDir>/.config/jest/setup-globals.ts'],
  setupFilesAfterEnv: ['<rootDir>/jest-setup.ts'],
  moduleNameMapper: {
    '\\.(css|scss|sass)$': 'identity-obj-proxy',
    '\\.(svg|png|jpe?g|gif)$': '<rootDir>/.config/jest/file-stub.ts',
  },
  transform: {
    '^.+\\.(t|j)sx?$|^.+\\.mjs$': [
      '@swc/jest',
      {
        jsc: {
          parser: { syntax: 'typescript', tsx: true, decorators: false, dynamicImport: true },
          transform: { react: { runtime: 'classic' } },
        },
      },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${ES_MODULES.join('|')})/)`],
  watchPathIgnorePatterns: ['<rootDir>/node_modules', '<rootDir>/dist'],
};

export default config;
