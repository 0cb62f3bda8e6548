import os from 'node:os';
import path from 'node:path';

import { defineConfig } from '@playwright/test';

/**
 * The browser test of the editors (tests/browser/editors.spec.ts), run by
 * scripts/browser-e2e.sh against a Grafana it starts. Playwright drives Debian's Chromium
 * (never a browser from Playwright's download site): CHROMIUM_PATH, default /usr/bin/chromium.
 *
 *   GRAFANA_URL            the Grafana to test (required; anonymous Admin, the provisioning loaded)
 *   CHROMIUM_PATH          the Chromium binary (default /usr/bin/chromium)
 *   BLUETICKS_BROWSER_OUT  where failure screenshots and traces go (default: a new temp dir)
 */
const outputDir = process.env.BLUETICKS_BROWSER_OUT || path.join(os.tmpdir(), `blueticks-browser-${process.pid}`);

export default defineConfig({
  testDir: '.',
  testMatch: '*.spec.ts',
  outputDir,
  // one Grafana, one browser: the steps change the same data source, so no parallel workers
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: true,
  timeout: 120_000,
  expect: { timeout: 20_000 },
  reporter: [['list', { printSteps: false }]],
  use: {
    baseURL: process.env.GRAFANA_URL,
    viewport: { width: 1600, height: 1000 },
    actionTimeout: 20_000,
    navigationTimeout: 60_000,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    timezoneId: 'UTC',
    locale: 'en-US',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
