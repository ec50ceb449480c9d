// Browser checks of the we-ui page in Debian's headless Chromium, driven by
// playwright-core. Called by crates/we-ui/tests/it (Rust), which starts the run
// and the UI process and reads this script's stdout and exit status.
//
//   node browser.mjs live  URL agents=N [screenshot=PATH]
//       the page loads, shows N agents and a tick that advances
//   node browser.mjs kill  URL agents=N
//       as `live`, then prints ATTACHED and waits until the page shows that
//       the UI process is gone (the test kills it on ATTACHED)
//   node browser.mjs trace URL ticks=T faulted=F [screenshot=PATH]
//       scrubs a finished trace: first tick, next, last (F faulted agents)
//
// Every wait is bounded; the whole script gives up after LIMIT_MS.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LIMIT_MS = 90_000;
const WAIT_MS = 30_000;
const CHROMIUM = process.env.WE_CHROMIUM || '/usr/bin/chromium';
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const [mode, url, ...rest] = process.argv.slice(2);
const opt = Object.fromEntries(rest.map((kv) => kv.split('=', 2)));

function fail(msg) {
  throw new Error(msg);
}

const watchdog = setTimeout(() => {
  console.error(`FAIL: gave up after ${LIMIT_MS} ms`);
  process.exit(3);
}, LIMIT_MS);

async function numberOf(page, id) {
  const v = await page.$eval(`#${id}`, (el) => el.dataset.value ?? '');
  return v === '' ? null : Number(v);
}

async function waitLiveAgents(page, agents) {
  await page.waitForFunction(
    (n) => document.querySelector('#agent-count')?.dataset.value === String(n),
    agents,
    { timeout: WAIT_MS },
  );
}

async function waitTickAbove(page, tick) {
  await page.waitForFunction(
    (t) => Number(document.querySelector('#tick')?.dataset.value ?? -1) > t,
    tick,
    { timeout: WAIT_MS },
  );
  return numberOf(page, 'tick');
}

async function live(page, kill) {
  const agents = Number(opt.agents);
  await page.goto(url, { waitUntil: 'load', timeout: WAIT_MS });
  const title = await page.title();
  if (!title.includes('wasm-engine')) fail(`unexpected title ${title}`);
  await waitLiveAgents(page, agents);
  const shown = await page.textContent('#agent-count');
  if (shown.replace(/[^0-9]/g, '') !== String(agents)) fail(`agent count shows ${shown}`);
  const t1 = await waitTickAbove(page, -1);
  const t2 = await waitTickAbove(page, t1);
  const t3 = await waitTickAbove(page, t2);
  const status = await page.$eval('#status', (el) => el.dataset.state);
  if (status !== 'running') fail(`status is ${status}, not running`);
  // The grid drew every agent (the hint names the count).
  const hint = await page.textContent('#grid-hint');
  if (!hint.replace(/[^0-9]/g, '').startsWith(String(agents))) fail(`grid hint ${hint}`);
  console.log(`TICKS ${t1} ${t2} ${t3}`);
  if (opt.screenshot) {
    // Let the charts fill a little before the picture.
    await page.waitForTimeout(Number(opt.settle_ms || 0));
    await page.screenshot({ path: opt.screenshot, fullPage: true });
    console.log(`SCREENSHOT ${opt.screenshot}`);
  }
  if (kill) {
    console.log('ATTACHED');
    // The test kills the UI process now; the page must notice, not hang.
    await page.waitForFunction(() => document.body.dataset.state === 'offline', null, {
      timeout: WAIT_MS,
    });
    const last = await numberOf(page, 'tick');
    console.log(`OFFLINE after tick ${last}`);
  }
}

async function trace(page) {
  const ticks = Number(opt.ticks);
  const faulted = Number(opt.faulted);
  await page.goto(url, { waitUntil: 'load', timeout: WAIT_MS });
  await page.waitForFunction(() => document.body.dataset.state === 'trace', null, { timeout: WAIT_MS });
  await page.waitForFunction(() => document.querySelector('#tick')?.dataset.value === '0', null, {
    timeout: WAIT_MS,
  });
  const max = await page.$eval('#scrub-range', (el) => Number(el.max));
  if (max !== ticks - 1) fail(`slider max ${max}, expected ${ticks - 1}`);
  await page.click('#scrub-next');
  await page.waitForFunction(() => document.querySelector('#tick')?.dataset.value === '1', null, {
    timeout: WAIT_MS,
  });
  await page.click('#scrub-last');
  await page.waitForFunction(
    (t) => document.querySelector('#tick')?.dataset.value === String(t),
    ticks - 1,
    { timeout: WAIT_MS },
  );
  const f = await numberOf(page, 'faulted-count');
  if (f !== faulted) fail(`faulted at the last tick: ${f}, expected ${faulted}`);
  // Keyboard scrubbing goes back one tick.
  await page.keyboard.press('ArrowLeft');
  await page.waitForFunction(
    (t) => document.querySelector('#tick')?.dataset.value === String(t),
    ticks - 2,
    { timeout: WAIT_MS },
  );
  const head = await page.textContent('#chain-head');
  if (!/^[0-9a-f]{64}$/.test(head.trim())) fail(`chain head ${head}`);
  console.log(`SCRUBBED ${ticks} ticks, ${f} faulted, head ${head.trim().slice(0, 16)}`);
  if (opt.screenshot) {
    await page.click('#scrub-last');
    await page.waitForTimeout(300);
    await page.screenshot({ path: opt.screenshot, fullPage: true });
    console.log(`SCREENSHOT ${opt.screenshot}`);
  }
}

const profile = mkdtempSync(join(tmpdir(), 'we-ui-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: Number(opt.width || 1440), height: Number(opt.height || 900) },
    timeout: WAIT_MS,
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  if (mode === 'live') await live(page, false);
  else if (mode === 'kill') await live(page, true);
  else if (mode === 'trace') await trace(page);
  else fail(`unknown mode ${mode}`);
  if (errors.length) fail(`page errors: ${errors.join('; ')}`);
  console.log('OK');
} catch (e) {
  console.error(`FAIL: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
