/**
 * The editors in a real Grafana and a real Chromium: the query editor (in Explore), the
 * config editor (the data source's settings page) and the variable editor (a new dashboard's
 * variables), against the provisioned data source on the embedded demo store.
 * Run it with scripts/browser-e2e.sh (it builds the plugin and Grafana's UI and starts both).
 */
import { expect, Page, test } from '@playwright/test';

import { Components } from '../../src/components/selectors';
import type { BlueTicksQuery } from '../../src/types';
import {
  CatalogMetric,
  DS_NAME,
  DS_UID,
  escapeRegExp,
  exploreUrl,
  framesOf,
  isQueryRequest,
  menuOption,
  openMenu,
  pick,
  pluginQuery,
  resource,
  selectInput,
} from './grafana';
import { unitLabel } from '../../src/units';

const Q = Components.QueryEditor;

// Area labels as the editor shows them (src/types.ts AREAS), in the catalog's order.
const AREA_LABELS = ['Delivery', 'Engagement', 'Conversion', 'Churn & quality', 'Service'];

/** Explore with the Blue Ticks data source and one empty query (nothing picked yet). */
async function openExplore(page: Page): Promise<void> {
  await page.goto(exploreUrl());
  await expect(page.getByTestId(Q.shape)).toBeVisible();
  await expect(page.getByTestId(Q.problems)).toContainText('Pick at least one metric.');
}

/** Clicks a shape of the query editor and checks it is the selected one. */
async function chooseShape(page: Page, label: string): Promise<void> {
  const shape = page.getByTestId(Q.shape);
  await shape.getByText(label, { exact: true }).click();
  await expect(shape.getByRole('radio', { name: label, exact: true })).toBeChecked();
}

test('query editor: clicks build the query JSON of SPEC section 3, and the result is shown', async ({ page }) => {
  const { metrics } = await resource<{ metrics: CatalogMetric[] }>(page, 'metrics');
  const { values: countries } = await resource<{ values: string[] }>(page, 'values?dimension=country&limit=100');
  expect(countries.length, 'the demo store has several countries').toBeGreaterThan(2);
  const byId = new Map(metrics.map((m) => [m.id, m]));
  const help = (id: string) => {
    const m = byId.get(id)!;
    return `${unitLabel(m)} · ${m.timeSemantics} — ${m.description}`;
  };
  const countryPicks = [countries[1], countries[0]];

  await openExplore(page);

  await test.step('shape: Table has no bucket, Time series has one', async () => {
    await chooseShape(page, 'Table');
    await expect(selectInput(page, Q.bucket)).toHaveCount(0);
    await chooseShape(page, 'Time series');
    await expect(selectInput(page, Q.bucket)).toBeVisible();
  });

  await test.step('metrics: the catalog is grouped by area, with unit and definition', async () => {
    const input = selectInput(page, Q.metrics);
    await input.click();
    const menu = openMenu(page);
    for (const area of AREA_LABELS) {
      await expect(menu.getByText(area, { exact: true })).toBeVisible();
    }
    // groups are open (Grafana 10 folds them unless told otherwise), each option has its help
    const deliveryRate = menuOption(page, byId.get('delivery_rate')!.name);
    await expect(deliveryRate).toContainText(help('delivery_rate'));
    await deliveryRate.click();
    await input.fill('open rate');
    await menuOption(page, byId.get('read_rate')!.name).click();
    await input.press('Escape');
    const definitions = page.getByTestId(Q.definitions);
    await expect(definitions.locator('li')).toHaveCount(2);
    await expect(definitions).toContainText(byId.get('delivery_rate')!.description);
    await expect(definitions).toContainText(byId.get('read_rate')!.description);
    await expect(page.getByTestId(Q.timeHelp)).toContainText('credited to the send time of the message');
  });

  await test.step('group by, a filter with values the backend suggests, bucket, top N, time zone', async () => {
    await pick(page, selectInput(page, Q.groupBy), 'Campaign', 'camp');
    await pick(page, selectInput(page, Components.Filters.add), 'Country', 'count');

    const row = page.getByTestId(Components.Filters.row);
    await expect(row).toHaveCount(1);
    const values = selectInput(row, Components.Filters.values);
    await values.click();
    // every suggestion comes from the backend's values resource
    for (const c of countries) {
      await expect(menuOption(page, c)).toBeVisible();
    }
    for (const c of countryPicks) {
      // the menu closes after a pick here; open it again for the next one
      if (!(await openMenu(page).isVisible())) {
        await values.click();
      }
      await menuOption(page, c).click();
    }
    if (await openMenu(page).isVisible()) {
      await values.press('Escape');
    }
    await expect(row).toContainText(countryPicks.join(''));

    await pick(page, selectInput(page, Q.bucket), '1h');
    const limit = page.locator('#blueticks-limit');
    await limit.fill('10');
    await limit.press('Tab');
    await pick(page, selectInput(page, Q.timezone), 'Europe/Rome');
    await expect(page.getByTestId(Q.problems)).toHaveCount(0);
  });

  await test.step('the request carries exactly that query, and the data comes back', async () => {
    const responded = page.waitForResponse(
      (r) => isQueryRequest(r.request()) && r.request().postDataJSON()?.queries?.[0]?.timezone === 'Europe/Rome'
    );
    await page.getByRole('button', { name: 'Run query', exact: true }).click();
    const response = await responded;
    const sent = response.request().postDataJSON();
    expect(sent.queries).toHaveLength(1);
    expect(sent.queries[0].refId).toBe('A');
    expect(sent.queries[0].datasource).toMatchObject({ uid: DS_UID });
    expect(pluginQuery(sent.queries[0])).toEqual({
      queryType: 'timeseries',
      metrics: ['delivery_rate', 'read_rate'],
      groupBy: ['campaign'],
      filters: [{ dimension: 'country', op: 'in', values: countryPicks }],
      bucket: '1h',
      limit: 10,
      timezone: 'Europe/Rome',
    });

    expect(response.status()).toBe(200);
    const frames = framesOf(await response.json(), 'A');
    expect(frames.length).toBeGreaterThan(0);
    const campaigns = new Set<string>();
    let positive = 0;
    for (const frame of frames) {
      const fields = frame.schema?.fields ?? [];
      expect(fields.map((f) => f.name)).toEqual(['time', 'delivery_rate', 'read_rate']);
      campaigns.add(fields[1].labels?.campaign ?? '');
      for (const column of (frame.data?.values ?? []).slice(1)) {
        positive += column.filter((v) => typeof v === 'number' && v > 0).length;
      }
    }
    expect(positive, 'some bucket has a non-zero rate').toBeGreaterThan(0);
    expect(campaigns.size).toBeGreaterThan(0);
    expect(campaigns.size, 'top 10 campaigns at most').toBeLessThanOrEqual(10);
    expect(campaigns.has('')).toBe(false);

    // the graph's legend has one entry per metric and campaign of the response
    const legend = page.getByRole('listitem').getByRole('button', { name: /^(delivery|read)_rate / });
    await expect(legend).toHaveCount(2 * campaigns.size);
    for (const campaign of campaigns) {
      for (const metric of ['delivery_rate', 'read_rate']) {
        await expect(legend.filter({ hasText: new RegExp(`^${metric} ${escapeRegExp(campaign)}$`) })).toBeVisible();
      }
    }
  });
});

test('query editor: an invalid combination is explained and not run', async ({ page }) => {
  const requests: Array<Record<string, unknown>> = [];
  page.on('request', (r) => {
    if (isQueryRequest(r)) {
      requests.push(r.postDataJSON());
    }
  });
  await openExplore(page);
  await pick(page, selectInput(page, Q.metrics), 'Quality rating', 'quality');
  await pick(page, selectInput(page, Q.groupBy), 'Campaign', 'camp');
  const problems = page.getByTestId(Q.problems);
  await expect(problems).toContainText('Quality rating groups only by business_number');

  // with a valid second query, Run query sends that one only
  // Grafana 10.0 names this button "Add row button"; its text is what a user reads
  await page.getByText('Add query', { exact: true }).click();
  await expect(page.getByTestId(Q.shape)).toHaveCount(2);
  const responded = page.waitForResponse((r) => isQueryRequest(r.request()));
  await page.getByRole('button', { name: 'Run query', exact: true }).click();
  const sent = (await responded).request().postDataJSON();
  expect(sent.queries.map((q: { refId: string }) => q.refId)).toEqual(['B']);
  // quality_rating alone ran while it was being built; with the group by, it never did
  const invalid = requests.flatMap((body) => (body.queries ?? []) as BlueTicksQuery[]).filter(
    (q) => q.metrics?.includes('quality_rating') && q.groupBy?.includes('campaign')
  );
  expect(invalid).toEqual([]);
});

test('query editor: raw SQL shows the read-only notice and the macros, and runs', async ({ page }) => {
  await openExplore(page);
  await chooseShape(page, 'Raw SQL');
  await expect(page.getByTestId(Q.sql.readOnly)).toContainText('Read-only SQL');
  await expect(page.getByTestId(Q.sql.readOnly)).toContainText('are refused');
  const macros = page.getByTestId(Q.sql.macros);
  for (const macro of [
    '$__timeFilter(ts)',
    '$__timeFrom',
    '$__timeTo',
    "$__timeGroup(ts, '1h')",
    '$__unixEpochFilter(col)',
    '$__conditionalAll(condition, $var)',
    '$__interval',
  ]) {
    await expect(macros.getByText(macro, { exact: true })).toBeVisible();
  }
  await expect(page.getByTestId(Q.problems)).toContainText('Write a SELECT over the view events.');

  const sql = 'SELECT count(*) AS n FROM events WHERE $__timeFilter(ts)';
  const editor = page.getByTestId(Q.sql.editor).locator('.monaco-editor[role="code"]');
  await expect(editor).toBeVisible();
  await editor.click();
  // Monaco closes brackets itself; typing the closing one steps over it
  await page.keyboard.type(sql);
  const responded = page.waitForResponse(
    (r) => isQueryRequest(r.request()) && r.request().postDataJSON()?.queries?.[0]?.queryType === 'sql'
  );
  await page.getByTestId(Q.sql.readOnly).click(); // blur: the editor writes rawSql and runs
  const response = await responded;
  expect(pluginQuery(response.request().postDataJSON().queries[0])).toEqual({ queryType: 'sql', rawSql: sql });
  const [frame] = framesOf(await response.json(), 'A');
  expect(frame.schema?.fields?.map((f) => f.name)).toEqual(['n']);
  expect(Number(frame.data?.values?.[0]?.[0])).toBeGreaterThan(0);
  await expect(page.getByTestId(Q.problems)).toHaveCount(0);
});

test('config editor: fields, an invalid limit, Save & test with the health message', async ({ page }) => {
  const before = await (await page.request.get(`/api/datasources/uid/${DS_UID}`)).json();
  expect(before.jsonData.queryTimeoutSeconds, 'provisioned').toBe(30);
  // the provisioned data source sets no row limit; a second run on the same Grafana finds the first's
  const maxRows = before.jsonData.maxRows === 5000 ? 7000 : 5000;

  await page.goto(`/datasources/edit/${DS_UID}`);
  const C = Components.ConfigEditor;
  await expect(page.getByLabel(C.storePath)).toBeVisible();
  await expect(page.getByLabel(C.storePath)).toHaveValue('');
  await expect(page.getByText('Using the embedded demo store')).toBeVisible();
  await expect(page.getByText('Hash key', { exact: true })).toBeVisible();
  await expect(page.getByTestId(C.limit('queryTimeoutSeconds'))).toHaveValue('30');
  await expect(page.getByTestId(C.limit('maxRows'))).toHaveValue(String(before.jsonData.maxRows ?? ''));
  for (const key of ['memoryLimitMB', 'buildMemoryLimitMB', 'threads', 'maxConcurrentQueries']) {
    await expect(page.getByTestId(C.limit(key))).toHaveValue('');
  }

  // an invalid entry is reported and never saved
  await page.getByTestId(C.limit('threads')).fill('two');
  await expect(page.getByText('Enter a positive whole number, or leave empty for the default.')).toBeVisible();
  await page.getByTestId(C.limit('memoryLimitMB')).fill('99999999');
  await expect(page.getByText('At most 1,048,576.')).toBeVisible();
  await page.getByTestId(C.limit('memoryLimitMB')).fill('');
  await expect(page.getByText('At most 1,048,576.')).toHaveCount(0);

  await page.getByTestId(C.limit('maxRows')).fill(String(maxRows));
  const saved = page.waitForResponse((r) => r.request().method() === 'PUT' && r.url().includes('/api/datasources/'));
  const health = page.waitForResponse((r) => r.url().endsWith(`/api/datasources/uid/${DS_UID}/health`));
  await page.getByRole('button', { name: 'Save & test' }).click();
  expect((await saved).status()).toBe(200);
  const healthBody = await (await health).json();
  expect(healthBody.status).toBe('OK');
  expect(healthBody.message).toMatch(/^OK: the embedded demo store holds \d+ events/);
  await expect(page.getByText(healthBody.message)).toBeVisible();

  const after = await (await page.request.get(`/api/datasources/uid/${DS_UID}`)).json();
  expect(after.jsonData.maxRows).toBe(maxRows);
  expect(after.jsonData.threads).toBeUndefined();
  expect(after.jsonData.memoryLimitMB).toBeUndefined();
  expect(after.jsonData.queryTimeoutSeconds).toBe(30);
});

test('variable editor: a query variable on a dimension previews its values', async ({ page }) => {
  const { values: segments } = await resource<{ values: string[] }>(page, 'values?dimension=segment&limit=100');
  expect(segments.length).toBeGreaterThan(1);

  await page.goto('/dashboard/new?orgId=1');
  await page.getByRole('button', { name: 'Dashboard settings' }).click();
  await page.getByRole('tab', { name: 'Variables' }).click();
  await page.getByRole('button', { name: 'Add variable' }).click();

  // a query variable on the default data source, the provisioned Blue Ticks
  await expect(page.getByText('Query options', { exact: true })).toBeVisible();
  await expect(page.getByTestId('data-testid Data source picker select container')).toContainText(DS_NAME);

  const responded = page.waitForResponse((r) => isQueryRequest(r.request()));
  await pick(page, selectInput(page, Components.VariableQueryEditor.dimension), 'Segment', 'seg');
  const sent = (await responded).request().postDataJSON();
  expect(pluginQuery(sent.queries[0])).toEqual({ queryType: 'values', dimension: 'segment' });

  const preview = page.getByLabel('Variable editor Preview of Values option');
  await expect(preview).toHaveText(segments);
});
