#!/usr/bin/env node
// Checks on dist/ that Grafana's plugin validator makes and that can fail a release, in
// plain node (the validator's npm package downloads a binary at run time, which CI
// without internet cannot do). Errors fail; warnings are printed.
//
//   node scripts/frontend-validate.mjs [dist]
import fs from 'node:fs';
import path from 'node:path';

const dist = path.resolve(process.argv[2] ?? 'dist');
const errors = [];
const warnings = [];

const exists = (rel) => fs.existsSync(path.join(dist, rel));

function readManifest() {
  const file = path.join(dist, 'plugin.json');
  if (!fs.existsSync(file)) {
    errors.push(`${file} is missing: run the build first`);
    return undefined;
  }
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    errors.push(`plugin.json is not valid JSON: ${err.message}`);
    return undefined;
  }
}

const p = readManifest();
if (p) {
  if (!/^[a-z0-9]+(-[a-z0-9]+)*-(datasource|panel|app)$/.test(p.id ?? '')) {
    errors.push(`id "${p.id}" must be lower-case words joined by "-" and end with the plugin type`);
  }
  if (!['datasource', 'panel', 'app'].includes(p.type)) {
    errors.push(`type "${p.type}" must be datasource, panel or app`);
  } else if (p.id && !p.id.endsWith(`-${p.type}`)) {
    errors.push(`id "${p.id}" must end with "-${p.type}"`);
  }
  if (!p.name) {
    errors.push('name is missing');
  }
  if (p.backend !== true) {
    errors.push('backend must be true (the KPIs are computed by the Go backend)');
  }
  if (p.alerting !== true) {
    errors.push('alerting must be true (block-rate alert rules use this data source)');
  }
  if (!p.executable) {
    errors.push('executable is missing (a backend plugin names its binary)');
  } else if (!fs.readdirSync(dist).some((f) => f.startsWith(`${p.executable}_`))) {
    warnings.push(`no ${p.executable}_<os>_<arch> binary in dist/: run the Go build before packaging`);
  }
  const version = p.info?.version ?? '';
  if (!/^\d+\.\d+\.\d+([-+][\w.-]+)?$/.test(version)) {
    errors.push(`info.version "${version}" is not a semantic version (placeholder not replaced?)`);
  }
  const updated = p.info?.updated ?? '';
  if (!/^\d{4}-\d{2}-\d{2}$/.test(updated)) {
    errors.push(`info.updated "${updated}" is not a date (placeholder not replaced?)`);
  }
  for (const size of ['small', 'large']) {
    const logo = p.info?.logos?.[size];
    if (!logo) {
      errors.push(`info.logos.${size} is missing`);
    } else if (!exists(logo)) {
      errors.push(`info.logos.${size} "${logo}" does not exist in dist/`);
    }
  }
  if (!p.info?.author?.name) {
    errors.push('info.author.name is missing');
  }
  if (!p.dependencies?.grafanaDependency) {
    errors.push('dependencies.grafanaDependency is missing');
  }
  for (const inc of p.includes ?? []) {
    if (inc.path && !exists(inc.path)) {
      warnings.push(`includes "${inc.name}": ${inc.path} is not in dist/ yet`);
    }
  }
}

if (!exists('module.js')) {
  errors.push('module.js is missing');
} else if (!/define\(/.test(fs.readFileSync(path.join(dist, 'module.js'), 'utf8').slice(0, 200))) {
  errors.push('module.js is not an AMD module');
}
for (const doc of ['README.md', 'CHANGELOG.md', 'LICENSE']) {
  if (!exists(doc)) {
    warnings.push(`${doc} is not in dist/ (the catalog shows it)`);
  }
}

for (const w of warnings) {
  console.warn(`warning: ${w}`);
}
for (const e of errors) {
  console.error(`error: ${e}`);
}
if (errors.length > 0) {
  console.error(`${dist}: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`${dist}: plugin.json and module.js look valid (${warnings.length} warning(s))`);
