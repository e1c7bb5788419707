// The hub's web console: one page, no framework, no build step.
//
// Sign-in keeps the host, policy name and key in sessionStorage and signs SAS tokens here with
// WebCrypto; only tokens are sent. A poll loop reads /console/api/overview every second (rates come
// from successive counters) and, while the Devices tab is open, the registry. The events pane reads
// /events as server-sent events through fetch (EventSource cannot send Authorization). Any failed
// request shows the "disconnected" banner; both loops keep retrying every second and resume alone.

const API_VERSION = '2021-04-12';
const POLL_MS = 1000;
const REQUEST_TIMEOUT_MS = 5000;
const CHART_WINDOW_MS = 5 * 60 * 1000;
const MAX_EVENTS = 200;
const TOKEN_LIFETIME_S = 3600;
const TOKEN_RENEW_S = 300; // a new token when the current one has less than this left
const NEVER = '0001-01-01T00:00:00Z'; // IoT Hub's "never" in device JSON
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569', '#ea580c'];

const $ = (selector, root = document) => root.querySelector(selector);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** An element with a class, text content or children. */
function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// ---------------------------------------------------------------------------------------------
// Credentials and SAS tokens

const STORE_KEY = 'hub.console.credentials';

function loadCredentials() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE_KEY));
  } catch {
    return null;
  }
}

function base64ToBytes(text) {
  return Uint8Array.from(atob(text.trim()), (c) => c.charCodeAt(0));
}

function bytesToBase64(bytes) {
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
}

let cachedToken = null; // { value, expiry }

/** `Authorization` for the service API: a policy SAS token valid one hour, renewed before it ends. */
async function sasToken() {
  const now = Math.floor(Date.now() / 1000);
  if (cachedToken && cachedToken.expiry - now > TOKEN_RENEW_S) return cachedToken.value;
  const credentials = loadCredentials();
  if (!credentials) throw new HttpError(401, 'Sign in first.');
  const expiry = now + TOKEN_LIFETIME_S;
  const resource = encodeURIComponent(credentials.host);
  const key = await crypto.subtle.importKey('raw', base64ToBytes(credentials.key),
    { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const signature = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(`${resource}\n${expiry}`));
  const sig = encodeURIComponent(bytesToBase64(new Uint8Array(signature)));
  const value = `SharedAccessSignature sr=${resource}&sig=${sig}&se=${expiry}&skn=${credentials.policy}`;
  cachedToken = { value, expiry };
  return value;
}

// ---------------------------------------------------------------------------------------------
// HTTP

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The message of an error answer: the hub's `{"code","message"}` or IoT Hub's `{"Message"}`. */
async function errorMessage(response) {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    const parts = [body.message ?? body.Message, body.ExceptionMessage].filter(Boolean);
    if (parts.length) return parts.join(': ');
  } catch { /* not JSON */ }
  return text.trim() || `${response.status} ${response.statusText}`;
}

/** A JSON call with the SAS token. 401 signs out with the hub's message. */
async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const init = {
    method,
    cache: 'no-store',
    headers: { Authorization: await sasToken(), ...headers },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    const message = await errorMessage(response);
    signOut(`The hub refused the credentials: ${message}`);
    throw new HttpError(401, message);
  }
  if (!response.ok) throw new HttpError(response.status, await errorMessage(response));
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// ---------------------------------------------------------------------------------------------
// Session: sign-in, sign-out, the loops

let session = 0; // bumped on sign-in and sign-out; loops of an older session stop
let hubInfo = { hubName: '', hostName: '' };

function setConnection(state, detail = '') {
  const banner = $('#connection-status');
  banner.dataset.state = state;
  banner.textContent = {
    connected: 'connected',
    disconnected: `disconnected — retrying${detail ? ` (${detail})` : ''}`,
    idle: 'not signed in',
  }[state];
}

async function loadInfo() {
  try {
    const response = await fetch('/console/api/info', { cache: 'no-store' });
    if (response.ok) hubInfo = await response.json();
  } catch { /* the hub is down: keep the defaults */ }
  $('#hub-name').textContent = hubInfo.hubName || 'hub';
  const host = $('#login-host');
  if (!host.value) host.value = hubInfo.hostName || location.hostname;
}

async function signIn(event) {
  event.preventDefault();
  const host = $('#login-host').value.trim();
  const policy = $('#login-policy').value.trim();
  const key = $('#login-key').value.trim();
  const error = $('#login-error');
  if (!globalThis.crypto?.subtle) {
    error.textContent = 'This page needs WebCrypto: open it over https, or on localhost.';
    return;
  }
  try {
    if (base64ToBytes(key).length === 0) throw new Error('empty');
  } catch {
    error.textContent = 'The policy key must be base64.';
    return;
  }
  sessionStorage.setItem(STORE_KEY, JSON.stringify({ host, policy, key }));
  cachedToken = null;
  $('#login-key').value = '';
  error.textContent = '';
  start();
}

function signOut(message = '') {
  // Several calls in flight can each be refused; the first one's message is the one to keep (the
  // others were aborted by it and have lost their answer).
  const alreadyOut = !$('#login').hidden;
  session += 1;
  events.controller?.abort();
  sessionStorage.removeItem(STORE_KEY);
  cachedToken = null;
  resetView();
  setConnection('idle');
  $('#app').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  if (!alreadyOut || !$('#login-error').textContent) $('#login-error').textContent = message;
}

function start() {
  session += 1;
  const id = session;
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = false;
  selectTab(location.hash.slice(1) || 'overview');
  pollLoop(id);
  eventsLoop(id);
}

function resetView() {
  lastSample = null;
  samples.length = 0;
  series.clear();
  events.buffer = [];
  events.lastId = null;
  for (const body of document.querySelectorAll('#app tbody, #events, #chart-legend')) body.replaceChildren();
}

/** Every second: the overview, and the registry while its tab is open. */
async function pollLoop(id) {
  while (id === session) {
    const started = Date.now();
    try {
      const overview = await api('/console/api/overview');
      if (id !== session) return;
      setConnection('connected');
      renderOverview(overview);
      if (currentTab === 'devices-tab') await refreshDevices().catch((error) => deviceMessage(error.message, true));
    } catch (error) {
      if (id !== session) return;
      if (error instanceof HttpError && error.status === 403) {
        signOut(`${error.message} (the console needs a policy with ServiceConnect)`);
        return;
      }
      lastSample = null; // the next rate starts from a fresh baseline
      $('#rate').textContent = '–';
      setConnection('disconnected', error.message);
    }
    await sleep(Math.max(0, POLL_MS - (Date.now() - started)));
  }
}

// ---------------------------------------------------------------------------------------------
// Tabs

let currentTab = 'overview';

function selectTab(name) {
  if (!document.getElementById(name)?.classList.contains('panel')) name = 'overview';
  currentTab = name;
  for (const button of document.querySelectorAll('[data-tab]')) {
    button.setAttribute('aria-selected', String(button.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll('.panel')) panel.hidden = panel.id !== name;
  window.history.replaceState(null, '', `#${name}`);
  if (name === 'overview') drawChart();
  if (name === 'devices-tab' && loadCredentials()) refreshDevices().catch((error) => deviceMessage(error.message, true));
}

// ---------------------------------------------------------------------------------------------
// Overview: counters, rates, chart, endpoints

let lastSample = null; // { t, received, counters: Map(series key -> cumulative count) }
const samples = []; // [{ t, rates: Map(series key -> per second) }], the last CHART_WINDOW_MS
const series = new Map(); // series key -> { label, color }

/** Counters are cumulative since the hub started: one going down means the hub restarted. */
function increase(now, before) {
  return now >= before ? now - before : now;
}

function renderOverview(overview) {
  hubInfo.hostName = overview.hostName || hubInfo.hostName;
  $('#hub-name').textContent = overview.hubName;
  $('#hub-host').textContent = overview.hostName;
  $('#devices-connected').textContent = overview.devices.connected;
  $('#devices-total').textContent = overview.devices.total;
  for (const name of ['received', 'refused', 'orphaned']) {
    $(`#${name}`).textContent = overview.messages[name].toLocaleString();
  }

  const routes = [...overview.routes, ...(overview.fallback ? [overview.fallback] : [])];
  const counters = new Map();
  for (const route of routes) counters.set(`route:${route.name}`, route.matched);
  for (const endpoint of overview.endpoints) counters.set(`endpoint:${endpoint.name}`, endpoint.delivered);
  for (const route of routes) addSeries(`route:${route.name}`, `route ${route.name}`);
  for (const endpoint of overview.endpoints) addSeries(`endpoint:${endpoint.name}`, `→ ${endpoint.name}`);

  const t = Date.now();
  if (lastSample) {
    const seconds = Math.max((t - lastSample.t) / 1000, 0.001);
    const rates = new Map();
    for (const [key, count] of counters) {
      if (lastSample.counters.has(key)) rates.set(key, increase(count, lastSample.counters.get(key)) / seconds);
    }
    samples.push({ t, rates });
    const rate = increase(overview.messages.received, lastSample.received) / seconds;
    $('#rate').textContent = rate.toFixed(1);
  }
  lastSample = { t, received: overview.messages.received, counters };
  while (samples.length && samples[0].t < t - CHART_WINDOW_MS) samples.shift();

  renderEndpoints(overview.endpoints);
  renderRouting(routes, overview.fallback, overview.enrichments);
  if (currentTab === 'overview') drawChart();
}

function addSeries(key, label) {
  if (series.has(key)) return;
  const color = COLORS[series.size % COLORS.length];
  series.set(key, { label, color });
  const swatch = el('span', 'swatch');
  swatch.style.background = color;
  const item = el('li', null, swatch, el('span', 'name', label), ' ', el('span', 'value', '–'));
  item.dataset.series = key;
  $('#chart-legend').append(item);
}

/** Keeps one row per item, keyed by `data-<attribute>`, updated in place (a shown connection
 * string or a focused button survives the next poll). `fill(row, item, created)` sets the cells. */
function syncRows(tbody, attribute, items, keyOf, fill) {
  const rows = new Map([...tbody.children].map((row) => [row.getAttribute(`data-${attribute}`), row]));
  const seen = new Set();
  for (const item of items) {
    const key = keyOf(item);
    seen.add(key);
    let row = rows.get(key);
    const created = !row;
    if (created) {
      row = el('tr');
      row.setAttribute(`data-${attribute}`, key);
    }
    fill(row, item, created);
    tbody.append(row); // keeps the order of `items`
  }
  for (const [key, row] of rows) if (!seen.has(key)) row.remove();
}

/** Creates the cells named `classes` in a new row; returns them by name. */
function cells(row, classes, created) {
  if (created) row.append(...classes.map((c) => el('td', c)));
  return Object.fromEntries(classes.map((c) => [c, row.querySelector(`td.${c}`)]));
}

function renderEndpoints(endpoints) {
  syncRows($('#endpoints tbody'), 'endpoint', endpoints, (e) => e.name, (row, endpoint, created) => {
    const c = cells(row, ['name', 'kind', 'health', 'backlog', 'delivered', 'last-error'], created);
    c.name.textContent = endpoint.name;
    c.kind.textContent = endpoint.kind;
    c.health.replaceChildren(el('span', `badge health-${endpoint.health}`, endpoint.health));
    c.backlog.textContent = endpoint.backlog.toLocaleString();
    c.delivered.textContent = endpoint.delivered.toLocaleString();
    c['last-error'].textContent = endpoint.lastKnownError
      ? `${endpoint.lastKnownError} (${formatTime(endpoint.lastKnownErrorTime)})` : '';
  });
}

function drawChart() {
  const canvas = $('#chart');
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return; // hidden
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  const style = getComputedStyle(canvas);
  const ink = style.color;
  const grid = style.getPropertyValue('--grid').trim() || '#ddd';
  const pad = { left: 44, right: 12, top: 10, bottom: 22 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const now = Date.now();
  let highest = 1;
  for (const sample of samples) for (const rate of sample.rates.values()) highest = Math.max(highest, rate);
  const step = niceStep(highest / 4);
  const top = step * Math.ceil(highest / step);
  const x = (t) => pad.left + plotW * (1 - (now - t) / CHART_WINDOW_MS);
  const y = (v) => pad.top + plotH * (1 - v / top);

  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  g.strokeStyle = grid;
  g.fillStyle = ink;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let v = 0; v <= top + step / 2; v += step) {
    g.beginPath();
    g.moveTo(pad.left, y(v));
    g.lineTo(width - pad.right, y(v));
    g.stroke();
    g.fillText(String(Number(v.toFixed(2))), pad.left - 6, y(v));
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  for (let m = 5; m >= 0; m--) g.fillText(m ? `-${m} min` : 'now', x(now - m * 60000), height - pad.bottom + 6);

  g.lineWidth = 1.5;
  for (const [key, { color }] of series) {
    g.strokeStyle = color;
    g.beginPath();
    let previous = null;
    for (const sample of samples) {
      const rate = sample.rates.get(key);
      if (rate === undefined) { previous = null; continue; }
      // A gap (hub down, tab asleep) stays a gap instead of a misleading straight line.
      if (previous && sample.t - previous.t < 3 * POLL_MS) g.lineTo(x(sample.t), y(rate));
      else g.moveTo(x(sample.t), y(rate));
      previous = sample;
    }
    g.stroke();
    const latest = samples.at(-1)?.rates.get(key);
    const value = $(`#chart-legend [data-series="${CSS.escape(key)}"] .value`);
    if (value) value.textContent = latest === undefined ? '–' : `${formatRate(latest)}/s`;
  }
}

/** The smallest of 1, 2, 2.5, 5 × a power of ten that is at least `v`. */
function niceStep(v) {
  const magnitude = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((n) => n >= v);
}

const formatRate = (v) => String(Number(v.toFixed(v >= 10 ? 0 : v >= 1 ? 1 : 2)));

function formatTime(text) {
  if (!text || text === NEVER) return 'never';
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  const ago = seconds < 60 ? `${Math.max(seconds, 0)} s ago` : seconds < 3600 ? `${Math.round(seconds / 60)} min ago` : '';
  return ago ? `${date.toLocaleTimeString()} (${ago})` : date.toLocaleString();
}

// ---------------------------------------------------------------------------------------------
// Routing (read-only) and the route tester

function renderRouting(routes, fallback, enrichments) {
  syncRows($('#routes tbody'), 'route', routes, (r) => r.name, (row, route, created) => {
    const c = cells(row, ['name', 'source', 'condition', 'endpoints', 'enabled', 'matched'], created);
    row.classList.toggle('fallback', route === fallback);
    row.classList.toggle('disabled', !route.isEnabled);
    c.name.textContent = route.name;
    c.source.textContent = route.source;
    c.condition.replaceChildren(el('code', null, route.condition));
    c.endpoints.textContent = route.endpointNames.join(', ');
    c.enabled.textContent = route.isEnabled ? 'yes' : 'no';
    c.matched.textContent = route.matched.toLocaleString();
  });
  $('#fallback-note').textContent = fallback
    ? `Messages that match no route go to ${fallback.endpointNames.join(', ')} (fallback ${fallback.isEnabled ? 'on' : 'off'}).`
    : routes.length ? 'No fallback route: messages that match no route are dropped (orphaned).'
      : 'No routing file: every device message goes to the built-in events endpoint.';
  syncRows($('#enrichments tbody'), 'enrichment', enrichments, (e) => e.key, (row, enrichment, created) => {
    const c = cells(row, ['key', 'value', 'endpoints'], created);
    c.key.textContent = enrichment.key;
    c.value.replaceChildren(el('code', null, enrichment.value));
    c.endpoints.textContent = (enrichment.endpointNames ?? []).join(', ');
  });
}

/** A JSON object from a textarea; property values become strings, as message properties are. */
function propertiesFrom(selector, what) {
  const text = $(selector).value.trim();
  if (!text) return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${what}: ${error.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${what}: expected a JSON object`);
  return Object.fromEntries(Object.entries(value).map(([k, v]) =>
    [k, v === null || typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v)]));
}

async function runRouteTest(event) {
  event.preventDefault();
  const condition = $('#test-condition').value;
  let message;
  try {
    message = {
      body: $('#test-body').value,
      appProperties: propertiesFrom('#test-app', 'Application properties'),
      systemProperties: propertiesFrom('#test-sys', 'System properties'),
    };
  } catch (error) {
    showTestOutcome('invalid', [el('p', 'error', error.message)], null);
    return;
  }
  try {
    const answer = await api('/console/api/test-route', { method: 'POST', body: { condition, message } });
    const details = [];
    if (answer.compilationErrors?.length) details.push(...highlightErrors(condition, answer.compilationErrors));
    if (answer.bodyError) details.push(el('p', 'warning', `$body is undefined: ${answer.bodyError}`));
    showTestOutcome(answer.result, details, answer.endpoints ?? []);
  } catch (error) {
    showTestOutcome('invalid', [el('p', 'error', error.message)], null);
  }
}

function showTestOutcome(result, details, endpoints) {
  const output = $('#test-result');
  output.textContent = result;
  output.dataset.result = result;
  $('#test-error').replaceChildren(...details);
  const list = $('#test-endpoints');
  if (!endpoints) list.replaceChildren('–');
  else if (!endpoints.length) list.replaceChildren(el('span', 'muted', 'no endpoint (dropped)'));
  else list.replaceChildren(...endpoints.map((name) => { const chip = el('span', 'chip', name); chip.dataset.endpoint = name; return chip; }));
}

/** Index in `text` of a 1-based line and UTF-16 column (JS string indices are UTF-16 too). */
function offsetOf(lines, { line, column }) {
  let offset = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
  return offset + Math.max(column - 1, 0);
}

/** The condition with each error's range in a <mark>, then the messages. The hub reports `end` as
 * the first position after the range (docs/query-language.md); an empty range marks one character. */
function highlightErrors(text, errors) {
  const lines = text.split('\n');
  const ranges = errors.map((error) => {
    const start = offsetOf(lines, error.location.start);
    const end = Math.max(offsetOf(lines, error.location.end), start + 1);
    return { start, end, error };
  }).sort((a, b) => a.start - b.start);
  const pre = el('pre', 'condition');
  let at = 0;
  for (const { start, end, error } of ranges) {
    const from = Math.max(start, at);
    if (end <= from) continue; // overlaps the previous mark
    pre.append(text.slice(at, from));
    const mark = el('mark', error.severity, text.slice(from, end) || ' '); // past the end: a visible blank
    mark.title = error.message;
    pre.append(mark);
    at = end;
  }
  pre.append(text.slice(at));
  const list = el('ul', 'diagnostics', ...errors.map((error) => {
    const { line, column } = error.location.start;
    return el('li', error.severity, `${line}:${column} ${error.severity}: ${error.message}`,
      error.hint ? el('span', 'hint', ` — ${error.hint}`) : null);
  }));
  return [pre, list];
}

// ---------------------------------------------------------------------------------------------
// Live events: /events as server-sent events over fetch

const events = { buffer: [], lastId: null, device: '', filter: null, controller: null, restart: false, pending: false };

async function eventsLoop(id) {
  while (id === session) {
    const controller = new AbortController();
    events.controller = controller;
    try {
      setEventsStatus('connecting…');
      const query = new URLSearchParams({ from: 'latest' });
      if (events.device) query.set('device', events.device);
      const headers = { Authorization: await sasToken() };
      if (events.lastId !== null) headers['Last-Event-ID'] = events.lastId;
      const response = await fetch(`/events?${query}`, { headers, cache: 'no-store', signal: controller.signal });
      if (response.status === 401) {
        signOut(`The hub refused the credentials: ${await errorMessage(response)}`);
        return;
      }
      if (!response.ok) throw new Error(await errorMessage(response));
      setEventsStatus(events.device ? `streaming ${events.device}` : 'streaming');
      await readServerSentEvents(response.body, receiveEvent);
      throw new Error('the stream ended');
    } catch (error) {
      if (id !== session) return;
      if (events.restart) { // the device filter changed: reconnect at once, from now
        events.restart = false;
        continue;
      }
      setEventsStatus(`reconnecting (${error.message})`);
    }
    await sleep(1000);
  }
}

/** Reads `text/event-stream` framing: `id:` and `data:` lines, a blank line ends an event. */
async function readServerSentEvents(stream, onEvent) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  let data = [];
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const lines = (pending + value).split('\n');
    pending = lines.pop();
    for (let line of lines) {
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (data.length) onEvent(id, data.join('\n'));
        data = [];
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'data') data.push(text);
        else if (field === 'id') id = text;
      }
    }
  }
}

function receiveEvent(id, data) {
  if (id !== null) events.lastId = id;
  let parsed;
  try {
    parsed = normalizeEvent(id, JSON.parse(data));
  } catch {
    parsed = { id, device: '', time: '', properties: [], system: [], body: data };
  }
  events.buffer.push(parsed);
  if (events.buffer.length > MAX_EVENTS) events.buffer.splice(0, events.buffer.length - MAX_EVENTS);
  if (!events.pending) {
    events.pending = true;
    requestAnimationFrame(renderEvents); // one render for a burst of events
  }
}

/** The hub stores `{"body": base64, "app": [[k, v]], "sys": {"cdid", "enq", ...}}`; the names of
 * IoT Hub's JSON (`properties`, `systemProperties`, `bodyEncoding`) are read as well. */
function normalizeEvent(id, message) {
  const sys = message.sys ?? message.systemProperties ?? {};
  const app = message.app ?? message.properties ?? message.appProperties ?? {};
  const properties = Array.isArray(app) ? app.map(([k, v]) => [String(k), v]) : Object.entries(app);
  const encoding = message.bodyEncoding ?? ('sys' in message || 'app' in message ? 'base64' : 'utf8');
  const system = [];
  for (const [label, names] of [['messageId', ['mid', 'messageId']], ['correlationId', ['cid', 'correlationId']],
    ['contentType', ['ct', 'contentType']], ['module', ['cmid', 'connectionModuleId']], ['source', ['src', 'messageSource']]]) {
    const value = names.map((n) => sys[n]).find((v) => v !== undefined && v !== null);
    if (value !== undefined) system.push([label, value]);
  }
  return {
    id,
    device: sys.cdid ?? sys.connectionDeviceId ?? sys['iothub-connection-device-id'] ?? '',
    time: sys.enq ?? sys.enqueuedTime ?? sys['iothub-enqueuedtime'] ?? '',
    properties,
    system,
    body: bodyText(message.body, encoding),
  };
}

function bodyText(body, encoding) {
  if (body === undefined || body === null) return '';
  if (typeof body !== 'string') return JSON.stringify(body);
  if (encoding !== 'base64') return body;
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(base64ToBytes(body));
  } catch {
    return `(binary, base64) ${body}`;
  }
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text;
  }
}

/** `name=value` (names case-insensitive, as in routing queries), or just `name`. */
function parseFilter(text) {
  text = text.trim();
  if (!text) return null;
  const [name, ...rest] = text.split('=');
  return { name: name.trim().toLowerCase(), value: rest.length ? rest.join('=').trim() : undefined };
}

function matchesFilter(event) {
  const filter = events.filter;
  if (!filter) return true;
  return event.properties.some(([k, v]) => k.toLowerCase() === filter.name && (filter.value === undefined || v === filter.value));
}

function renderEvents() {
  events.pending = false;
  const shown = events.buffer.filter(matchesFilter).reverse().map((event) => {
    const item = el('li', 'event',
      el('div', 'meta', el('span', 'device', event.device || '(no device)'), ' ',
        el('time', 'time', event.time), ' ',
        ...event.system.map(([k, v]) => el('span', 'sys', `${k}=${v}`))),
      el('div', 'props', ...event.properties.map(([k, v]) => {
        const chip = el('span', 'chip', v === null ? k : `${k}=${v}`);
        chip.dataset.name = k;
        return chip;
      })),
      el('pre', 'body', event.body.length > 2000 ? `${event.body.slice(0, 2000)}…` : event.body));
    if (event.id !== null) item.dataset.id = event.id;
    return item;
  });
  $('#events').replaceChildren(...shown);
}

const setEventsStatus = (text) => { $('#events-status').textContent = text; };

function applyEventFilters(event) {
  event.preventDefault();
  events.filter = parseFilter($('#events-filter').value);
  const device = $('#events-device').value.trim();
  if (device !== events.device) { // server side: a new stream from now
    events.device = device;
    events.lastId = null;
    events.buffer = [];
    events.restart = true;
    events.controller?.abort();
  }
  renderEvents();
}


// ---------------------------------------------------------------------------------------------
// Devices. The registry answers with keys: they are dropped on arrival and fetched again only on
// an explicit "show" or "copy connection string" for one device.

const devicePath = (id) => `/devices/${encodeURIComponent(id)}?api-version=${API_VERSION}`;

async function refreshDevices() {
  const list = await api(`/devices?api-version=${API_VERSION}`);
  const devices = list.map(({ deviceId, status, connectionState, lastActivityTime }) =>
    ({ deviceId, status, connectionState, lastActivityTime }));
  devices.sort((a, b) => a.deviceId.localeCompare(b.deviceId));
  syncRows($('#devices tbody'), 'device', devices, (d) => d.deviceId, (row, device, created) => {
    const c = cells(row, ['id', 'status', 'connection', 'activity', 'actions'], created);
    if (created) {
      c.id.append(el('span', 'name', device.deviceId), el('code', 'cs'));
      c.actions.append(deviceButton('toggle', ''), deviceButton('show-cs', 'Show connection string'),
        deviceButton('copy-cs', 'Copy connection string'), deviceButton('delete', 'Delete'));
    }
    c.status.replaceChildren(el('span', `badge status-${device.status}`, device.status));
    c.connection.textContent = device.connectionState;
    c.activity.textContent = formatTime(device.lastActivityTime);
    const toggle = c.actions.querySelector('button[data-action="toggle"]');
    const enabled = device.status === 'enabled';
    toggle.className = enabled ? 'disable' : 'enable';
    toggle.textContent = enabled ? 'Disable' : 'Enable';
  });
}

function deviceButton(action, label) {
  const button = el('button', action, label);
  button.type = 'button';
  button.dataset.action = action;
  return button;
}

function deviceMessage(text, isError = false) {
  const message = $('#devices-message');
  message.textContent = text;
  message.classList.toggle('error', isError);
}

async function createDevice(event) {
  event.preventDefault();
  const id = $('#device-new-id').value.trim();
  if (!id) return deviceMessage('Type a device id.', true);
  try {
    await api(devicePath(id), { method: 'PUT', body: { deviceId: id } }); // the answer's keys are ignored
    $('#device-new-id').value = '';
    deviceMessage(`Created ${id}.`);
    await refreshDevices();
  } catch (error) {
    deviceMessage(`Could not create ${id}: ${error.message}`, true);
  }
}

async function connectionString(id) {
  const device = await api(devicePath(id));
  const key = device.authentication?.symmetricKey?.primaryKey;
  if (!key) throw new Error('the device has no symmetric key');
  const host = hubInfo.hostName || loadCredentials()?.host;
  return `HostName=${host};DeviceId=${id};SharedAccessKey=${key}`;
}

async function deviceAction(event) {
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  const row = button.closest('tr[data-device]');
  const id = row.getAttribute('data-device');
  const output = row.querySelector('code.cs');
  button.disabled = true;
  try {
    switch (button.dataset.action) {
      case 'toggle': {
        const status = button.classList.contains('disable') ? 'disabled' : 'enabled';
        await api(devicePath(id), { method: 'PUT', body: { deviceId: id, status }, headers: { 'If-Match': '*' } });
        deviceMessage(`${id} is ${status}.`);
        break;
      }
      case 'show-cs':
        if (output.textContent) {
          output.textContent = '';
          button.textContent = 'Show connection string';
        } else {
          output.textContent = await connectionString(id);
          button.textContent = 'Hide connection string';
        }
        break;
      case 'copy-cs': {
        const text = await connectionString(id);
        try {
          await navigator.clipboard.writeText(text);
          deviceMessage(`Copied the connection string of ${id}.`);
        } catch {
          output.textContent = text; // no clipboard (not a secure context): show it to copy by hand
          deviceMessage('The clipboard is not available here: copy the connection string shown.', true);
        }
        break;
      }
      case 'delete':
        if (!confirm(`Delete device ${id}?`)) break;
        await api(devicePath(id), { method: 'DELETE', headers: { 'If-Match': '*' } });
        deviceMessage(`Deleted ${id}.`);
        break;
    }
    if (button.dataset.action === 'toggle' || button.dataset.action === 'delete') await refreshDevices();
  } catch (error) {
    deviceMessage(`${id}: ${error.message}`, true);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function main() {
  $('#login-form').addEventListener('submit', signIn);
  $('#logout').addEventListener('click', () => signOut());
  $('.tabs').addEventListener('click', (event) => {
    const tab = event.target.closest('[data-tab]');
    if (tab) selectTab(tab.dataset.tab);
  });
  $('#test-form').addEventListener('submit', runRouteTest);
  $('#events-form').addEventListener('submit', applyEventFilters);
  $('#events-clear').addEventListener('click', () => { events.buffer = []; renderEvents(); });
  $('#device-form').addEventListener('submit', createDevice);
  $('#devices tbody').addEventListener('click', deviceAction);
  window.addEventListener('resize', () => drawChart());
  loadInfo();
  if (loadCredentials()) start();
  else signOut();
}

main();
