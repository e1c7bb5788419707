// Browser test of the hub's web console. scripts/console-test builds the hub, writes its
// configuration and routing and runs this file; here the hub runs as a child process (so the test
// can SIGKILL and restart it), a device sends telemetry over HTTPS-style REST at ~20 msg/s, and
// headless Chromium (playwright-core) drives the page at http://<http listener>/console/.
//
// Environment (set by scripts/console-test): CONSOLE_HUB_BIN, CONSOLE_HUB_CONFIG, CONSOLE_WORK,
// CONSOLE_HTTP, CONSOLE_ADMIN, CONSOLE_OWNER_KEY, CONSOLE_SCREENSHOTS. CONSOLE_FROM_SOURCE=<dir> serves index.html/app.js/app.css from that
// directory instead of the copies built into the binary (to try page edits without a rebuild).

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const HOST = 'localhost';
const OWNER = 'iothubowner';
const API = 'api-version=2021-04-12';
const DEVICE = 'sim-1';
const UI_DEVICE = 'console-dev';
const DEADLINE_MS = 150_000;

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/console-test`);
  return value;
}
const HUB_BIN = need('CONSOLE_HUB_BIN');
const HUB_CONFIG = need('CONSOLE_HUB_CONFIG');
const WORK = need('CONSOLE_WORK');
const BASE = `http://${need('CONSOLE_HTTP')}`;
const ADMIN = `http://${need('CONSOLE_ADMIN')}`;
const OWNER_KEY = need('CONSOLE_OWNER_KEY');
const SCREENSHOTS = need('CONSOLE_SCREENSHOTS');
const FROM_SOURCE = process.env.CONSOLE_FROM_SOURCE;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (text) => console.log(`console-test: ${text}`);

/** A SAS token as the SDKs make it: `sr` URL-encoded, HMAC-SHA256 over `sr\nexpiry`. */
function sasToken(resource, key, policy) {
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  const sr = encodeURIComponent(resource);
  const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiry}${policy ? `&skn=${policy}` : ''}`;
}
const ownerToken = () => sasToken(HOST, OWNER_KEY, OWNER);

async function rest(method, urlPath, body, headers = {}) {
  const response = await fetch(`${BASE}${urlPath}`, {
    method,
    headers: { Authorization: ownerToken(), 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${urlPath}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Polls `probe` until it returns a truthy value; fails naming `what` after `ms`. */
async function waitFor(what, probe, ms = 15_000) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    try {
      last = await probe();
      if (last) return last;
    } catch (error) {
      last = error.message;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${ms / 1000} s waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// --- the hub process ---------------------------------------------------------------------------

let hub = null;

async function startHub() {
  const out = fs.openSync(path.join(WORK, 'hub.log'), 'a');
  // The hub reads HUB_* variables as settings: it gets none but its configuration file.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('HUB_')));
  const child = spawn(HUB_BIN, ['serve', '--config', HUB_CONFIG], { stdio: ['ignore', out, out], env });
  fs.closeSync(out);
  fs.writeFileSync(path.join(WORK, 'hub.pid'), String(child.pid)); // for the runner's cleanup
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  hub = child;
  let gone = null;
  child.exited.then((status) => { gone = status; });
  await waitFor('the hub to answer /ready', async () => {
    if (gone !== null) throw new Error(`the hub exited (${gone}) at start: see its log`);
    return (await fetch(`${ADMIN}/ready`, { signal: AbortSignal.timeout(1000) })).ok;
  }, 30_000);
}

async function killHub() {
  hub.kill('SIGKILL');
  await hub.exited;
}

// --- a device sending telemetry ----------------------------------------------------------------

const LEVELS = ['critical', 'storage', 'info', 'critical', 'storage', null];
const telemetry = { sent: 0, failed: 0, stop: false };

async function sendTelemetry(deviceKey) {
  const token = sasToken(`${HOST}/devices/${DEVICE}`, deviceKey);
  let inflight = 0;
  for (let n = 0; !telemetry.stop; n++) {
    await sleep(50);
    if (inflight >= 10) continue;
    const level = LEVELS[n % LEVELS.length];
    const headers = { Authorization: token, 'iothub-contenttype': 'application/json', 'iothub-contentencoding': 'utf-8',
      'iothub-messageid': `m-${n}`, 'iothub-app-seq': String(n) };
    if (level) headers['iothub-app-level'] = level;
    inflight += 1;
    fetch(`${BASE}/devices/${DEVICE}/messages/events?${API}`, {
      method: 'POST', headers, body: JSON.stringify({ n, windSpeed: 10 + (n % 7) }), signal: AbortSignal.timeout(3000),
    }).then((r) => { if (r.ok) telemetry.sent += 1; else telemetry.failed += 1; },
      () => { telemetry.failed += 1; })
      .finally(() => { inflight -= 1; });
  }
}

// --- the checks --------------------------------------------------------------------------------

let page;
let step = 0;
let passed = 0;
const pageErrors = [];

async function check(name, body) {
  step += 1;
  log(`[${step}] ${name}`);
  await body();
  const file = `${String(step).padStart(2, '0')}-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.png`;
  await page.screenshot({ path: path.join(SCREENSHOTS, file), fullPage: true });
  passed += 1;
}

const text = (selector) => page.locator(selector).first().textContent({ timeout: 5000 });
const number = async (selector) => Number((await text(selector)).replace(/[^0-9.]/g, ''));
const tab = (name) => page.click(`[data-tab="${name}"]`);

async function noKeyInPage(keys, when) {
  const html = await page.content();
  for (const [what, key] of Object.entries(keys)) {
    if (html.includes(key)) throw new Error(`${what} appears in the page ${when}`);
  }
}

async function testRoute(condition, app, expected) {
  await page.fill('#test-condition', condition);
  await page.fill('#test-body', '{"temp": 30}');
  await page.fill('#test-app', JSON.stringify(app));
  await page.fill('#test-sys', '{"contentType": "application/json", "contentEncoding": "utf-8"}');
  await page.evaluate(() => { document.querySelector('#test-result').textContent = ''; });
  await page.click('#test-run');
  await waitFor(`"${condition}" to test ${expected}`, async () => (await text('#test-result')) === expected);
}

async function main() {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await startHub();
  const device = await rest('PUT', `/devices/${DEVICE}?${API}`, { deviceId: DEVICE });
  const keys = { 'the policy key': OWNER_KEY, [`${DEVICE}'s primary key`]: device.authentication.symmetricKey.primaryKey };
  const sender = sendTelemetry(device.authentication.symmetricKey.primaryKey);

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'], headless: true });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) pageErrors.push(message.text());
    });
    page.on('dialog', (dialog) => dialog.accept());
    if (FROM_SOURCE) {
      for (const [file, type] of [['index.html', 'text/html'], ['app.js', 'text/javascript'], ['app.css', 'text/css']]) {
        const url = `${BASE}/console/${file === 'index.html' ? '' : file}`;
        // The hub's own answer (its headers, CSP included) with the file from the source tree.
        await page.route(url, async (route) => route.fulfill({
          response: await route.fetch(), contentType: type, body: fs.readFileSync(path.join(FROM_SOURCE, file)),
        }));
      }
    }
    await page.goto(`${BASE}/console/`);

    await check('sign in', async () => {
      await page.waitForSelector('#login-form', { state: 'visible' });
      const host = await page.inputValue('#login-host');
      if (host !== HOST) throw new Error(`the host name is prefilled with "${host}", expected "${HOST}" from /console/api/info`);
      if ((await page.inputValue('#login-policy')) !== OWNER) throw new Error('the policy name is not prefilled with iothubowner');
      // A wrong key: the hub answers 401 and the form says so.
      await page.fill('#login-key', crypto.randomBytes(32).toString('base64'));
      await page.click('#login-submit');
      await waitFor('the refusal on the sign-in form', async () =>
        (await page.isVisible('#login-form')) && (await text('#login-error')).includes('not authorized'));
      log(`a wrong key: "${await text('#login-error')}"`);
      await page.screenshot({ path: path.join(SCREENSHOTS, '00-sign-in-refused.png') });
      await page.fill('#login-key', OWNER_KEY);
      await page.click('#login-submit');
      await page.waitForSelector('#overview', { state: 'visible' });
      await waitFor('the banner to say connected', async () => (await page.getAttribute('#connection-status', 'data-state')) === 'connected');
      await noKeyInPage(keys, 'after signing in');
    });

    await check('message rate and route matches', async () => {
      await waitFor('#rate above 0', async () => (await number('#rate')) > 0);
      const first = await number('[data-route="critical"] .matched');
      await sleep(2500);
      const second = await number('[data-route="critical"] .matched');
      if (!(second > first)) throw new Error(`the critical route's match count did not increase: ${first} then ${second}`);
      await waitFor('the device count', async () => (await number('#devices-total')) >= 1);
      await waitFor('the endpoints table', async () => (await page.locator('#endpoints [data-endpoint="CriticalQueue"] .health').count()) === 1);
      log(`rate ${await text('#rate')}/s, critical matched ${first} → ${second}`);
    });

    await check('route tester true', async () => {
      await tab('routing');
      await testRoute("level = 'critical'", { level: 'critical' }, 'true');
      const reached = await text('#test-endpoints');
      if (!reached.includes('CriticalQueue')) throw new Error(`the message would reach "${reached}", expected CriticalQueue`);
    });

    await check('route tester undefined', async () => {
      await testRoute("missing = 'x'", { level: 'critical' }, 'undefined');
    });

    await check('route tester compile error', async () => {
      await testRoute("level = = 'x'", { level: 'critical' }, 'error');
      const marks = page.locator('#test-error mark');
      if ((await marks.count()) < 1) throw new Error('no <mark> over the error in #test-error');
      const marked = await marks.first().textContent();
      if (!marked) throw new Error('the <mark> is empty');
      log(`marked "${marked}" in "level = = 'x'": ${await text('#test-error ul')}`);
    });

    await check('create and disable a device', async () => {
      await tab('devices-tab');
      await page.fill('#device-new-id', UI_DEVICE);
      await page.click('#device-create');
      const row = `[data-device="${UI_DEVICE}"]`;
      await waitFor(`${UI_DEVICE} enabled`, async () => (await text(`${row} .status`)).trim() === 'enabled');
      await page.click(`${row} button.disable`);
      await waitFor(`${UI_DEVICE} disabled`, async () => (await text(`${row} .status`)).trim() === 'disabled');
      const stored = await rest('GET', `/devices/${UI_DEVICE}?${API}`);
      if (stored.status !== 'disabled') throw new Error(`the registry says ${UI_DEVICE} is ${stored.status}`);
      keys[`${UI_DEVICE}'s primary key`] = stored.authentication.symmetricKey.primaryKey;
      keys[`${UI_DEVICE}'s secondary key`] = stored.authentication.symmetricKey.secondaryKey;
      keys[`${DEVICE}'s secondary key`] = device.authentication.symmetricKey.secondaryKey;
      await noKeyInPage(keys, 'before any connection string was asked for');
    });

    await check('live events', async () => {
      await tab('events-tab');
      await waitFor('events in the live pane', async () => (await page.locator('#events li.event').count()) >= 5);
      const deviceShown = (await text('#events li.event .device')).trim();
      if (deviceShown !== DEVICE) throw new Error(`the newest event shows device "${deviceShown}", expected ${DEVICE}`);
      // Only messages that match no route reach `events` (the fallback): `info` and unlabelled ones.
      await page.fill('#events-filter', 'level=info');
      await page.click('#events-apply');
      await waitFor('only level=info events', async () => {
        const chips = await page.locator('#events li.event').evaluateAll((items) =>
          items.map((item) => [...item.querySelectorAll('.props .chip')].map((c) => c.textContent)));
        return chips.length > 0 && chips.every((c) => c.includes('level=info'));
      });
      if ((await page.locator('#events li.event').count()) > 200) throw new Error('more than 200 events on screen');
      await page.fill('#events-filter', '');
      await page.click('#events-apply');
      await noKeyInPage(keys, 'while showing events');
    });

    await check('hub killed: banner says disconnected', async () => {
      await tab('overview');
      await killHub();
      await waitFor('the banner to say disconnected', async () =>
        (await page.getAttribute('#connection-status', 'data-state')) === 'disconnected'
        && (await text('#connection-status')).includes('disconnected'), 10_000);
    });

    let newestBefore;
    await check('hub restarted: connected again, rate and events resume', async () => {
      newestBefore = Number(await page.locator('#events li.event').first().getAttribute('data-id'));
      const receivedBefore = await number('#received');
      await startHub();
      await waitFor('the banner to say connected', async () => {
        const banner = await text('#connection-status');
        return (await page.getAttribute('#connection-status', 'data-state')) === 'connected'
          && banner.includes('connected') && !banner.includes('disconnected');
      }, 15_000);
      await waitFor('#rate above 0 after the restart', async () => (await number('#rate')) > 0, 15_000);
      const received = await number('#received');
      log(`after the restart: rate ${await text('#rate')}/s, received ${received} (was ${receivedBefore} before the kill)`);
      await waitFor('new events after the restart', async () =>
        Number(await page.locator('#events li.event').first().getAttribute('data-id')) > newestBefore, 15_000);
    });

    await check('show connection string on click', async () => {
      await noKeyInPage(keys, 'before the connection string click');
      await tab('devices-tab');
      const row = `[data-device="${UI_DEVICE}"]`;
      await page.click(`${row} button.show-cs`);
      const expected = `HostName=${HOST};DeviceId=${UI_DEVICE};SharedAccessKey=${keys[`${UI_DEVICE}'s primary key`]}`;
      await waitFor('the connection string', async () => (await text(`${row} code.cs`)) === expected);
      const html = await page.content();
      if (html.includes(keys[`${DEVICE}'s primary key`])) throw new Error(`${DEVICE}'s key appears though only ${UI_DEVICE}'s was asked for`);
      if (html.includes(OWNER_KEY)) throw new Error('the policy key appears in the page');
    });

    await check('delete a device', async () => {
      await page.click(`[data-device="${UI_DEVICE}"] button.delete`); // the confirm() is accepted
      await waitFor(`${UI_DEVICE} gone from the list`, async () => (await page.locator(`[data-device="${UI_DEVICE}"]`).count()) === 0);
      const response = await fetch(`${BASE}/devices/${UI_DEVICE}?${API}`, { headers: { Authorization: ownerToken() } });
      if (response.status !== 404) throw new Error(`GET ${UI_DEVICE} after the delete answered ${response.status}`);
    });

    if (pageErrors.length) throw new Error(`the page threw: ${pageErrors.join('; ')}`);
  } catch (error) {
    await page?.screenshot({ path: path.join(SCREENSHOTS, 'failure.png'), fullPage: true }).catch(() => {});
    throw error;
  } finally {
    telemetry.stop = true;
    await sender.catch(() => {});
    await browser.close().catch(() => {});
  }
  log(`telemetry: ${telemetry.sent} sent, ${telemetry.failed} failed (while the hub was down)`);
}

const deadline = setTimeout(() => {
  console.error(`console-test: FAILED: the test did not finish within ${DEADLINE_MS / 1000} s (step ${step})`);
  hub?.kill('SIGKILL');
  process.exit(1);
}, DEADLINE_MS);

try {
  await main();
  console.log(`console: ${passed} passed, 0 failed`);
} catch (error) {
  console.error(`console-test: FAILED at step ${step}: ${error.message}`);
  console.log(`console: ${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  clearTimeout(deadline);
  if (hub && hub.exitCode === null && hub.signalCode === null) {
    hub.kill('SIGTERM');
    await Promise.race([hub.exited, sleep(5000)]);
    hub.kill('SIGKILL');
  }
}
