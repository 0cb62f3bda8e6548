import { expect, Locator, Page, Request } from '@playwright/test';

/** The provisioned data source (provisioning/datasources/blueticks.yaml) on the embedded demo store. */
export const DS_UID = 'blueticks-demo';
export const DS_TYPE = 'blueticks-whatsapp-datasource';
export const DS_NAME = 'Blue Ticks (demo)';

/** Keys Grafana itself adds to every query it sends; the rest is the plugin's query JSON. */
const GRAFANA_QUERY_KEYS = ['refId', 'datasource', 'datasourceId', 'intervalMs', 'maxDataPoints', 'key', 'hide'];

export interface CatalogMetric {
  id: string;
  name: string;
  area: string;
  unit: string;
  kind: string;
  description: string;
  timeSemantics?: string;
  shapes: string[];
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The input of a Grafana Select (react-select puts the aria-label on its input). */
export function selectInput(scope: Page | Locator, label: string): Locator {
  return scope.locator(`input[aria-label="${label}"]`);
}

/** The open Select menu (there is one at a time). */
export function openMenu(page: Page): Locator {
  return page.locator('[aria-label="Select options menu"]');
}

/** An option of the open Select menu whose label (not description) is exactly `label`. */
export function menuOption(page: Page, label: string): Locator {
  return openMenu(page)
    .locator('[aria-label="Select option"]')
    .filter({ has: page.locator('span').filter({ hasText: new RegExp(`^${escapeRegExp(label)}$`) }) });
}

/**
 * Opens a Select by clicking it, types `typed` (to narrow long lists), and clicks the option
 * labelled `label`. The menu of a multi-select stays open: Escape closes it.
 */
export async function pick(page: Page, input: Locator, label: string, typed = label): Promise<void> {
  await input.click();
  if (typed) {
    await input.fill(typed);
  }
  const option = menuOption(page, label);
  await expect(option).toBeVisible();
  await option.click();
  if (await openMenu(page).isVisible()) {
    await input.press('Escape');
  }
}

/** The plugin's part of a query Grafana sent: everything but Grafana's own keys. */
export function pluginQuery(query: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(query).filter(([k]) => !GRAFANA_QUERY_KEYS.includes(k)));
}

export function isQueryRequest(r: Request): boolean {
  return r.method() === 'POST' && new URL(r.url()).pathname === '/api/ds/query';
}

/** A data source resource as the editors fetch it (the browser session is anonymous Admin). */
export async function resource<T>(page: Page, path: string): Promise<T> {
  const r = await page.request.get(`/api/datasources/uid/${DS_UID}/resources/${path}`);
  expect(r.ok(), `GET resources/${path}: ${r.status()}`).toBeTruthy();
  return (await r.json()) as T;
}

/** Explore with the data source picked and a fixed relative range; Grafana adds one default query. */
export function exploreUrl(range = { from: 'now-7d', to: 'now' }): string {
  const left = { datasource: DS_UID, queries: [{ refId: 'A', datasource: { type: DS_TYPE, uid: DS_UID } }], range };
  return `/explore?orgId=1&left=${encodeURIComponent(JSON.stringify(left))}`;
}

/** Data frames of one refId in a /api/ds/query response body. */
export interface FrameJSON {
  schema?: { fields?: Array<{ name: string; labels?: Record<string, string> }> };
  data?: { values?: unknown[][] };
}

export function framesOf(body: unknown, refId: string): FrameJSON[] {
  const results = (body as { results?: Record<string, { frames?: FrameJSON[]; error?: string }> }).results ?? {};
  const result = results[refId];
  expect(result, `no result for ${refId} in ${JSON.stringify(body).slice(0, 500)}`).toBeDefined();
  expect(result.error, `query ${refId} failed`).toBeUndefined();
  return result.frames ?? [];
}
