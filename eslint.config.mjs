// Small on purpose: the recommended rules of ESLint and typescript-eslint, plus the
// rules of hooks.
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{ts,tsx}'],
    plugins: { 'react-hooks': reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['scripts/**/*.{js,mjs}', '.config/**/*.{js,ts}', 'jest.config.*', 'jest-setup.*'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    // stand-ins copied into Grafana's own frontend build (scripts/grafana/get-grafana-ui.sh)
    files: ['scripts/grafana/ui-vendor/**/*.js'],
    languageOptions: { globals: { ...globals.browser, ...globals.jquery, ...globals.commonjs } },
  },
  {
    files: ['tests/browser/**/*.ts'],
    languageOptions: { globals: { ...globals.node } },
  }
);
