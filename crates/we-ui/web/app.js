// wasm-engine UI: polls this UI process (never the run) and draws on canvas.
// Live mode reads /api/live four times a second; trace mode reads /api/trace
// once and /api/trace/tick?i=N as the user scrubs. No external resources.
'use strict';

const POLL_MS = 250;
const FETCH_TIMEOUT_MS = 2000;
const TABLE_ROWS = 200;

const KIND_COLORS = {
  fuel_exhausted: '#f59e0b',
  trap: '#ef4444',
  stack_overflow: '#f97316',
  out_of_bounds: '#d946ef',
  malformed_effects: '#a855f7',
  effect_limit: '#ec4899',
  message_too_large: '#eab308',
  error_code: '#fb7185',
  injected: '#94a3b8',
  watchdog: '#facc15',
};
const LIVE_COLOR = '#22c55e';
const KIND_LABELS = {
  fuel_exhausted: 'fuel exhausted',
  trap: 'trap',
  stack_overflow: 'stack overflow',
  out_of_bounds: 'out of bounds',
  malformed_effects: 'malformed effects',
  effect_limit: 'effect limit',
  message_too_large: 'message too large',
  error_code: 'error code',
  injected: 'injected',
  watchdog: 'watchdog',
};
const STATE_TEXT = {
  waiting: 'waiting for run',
  attached: 'attached',
  running: 'live',
  idle: 'idle',
  ended: 'run ended',
  offline: 'ui offline',
  trace: 'trace',
};

const $ = (id) => document.getElementById(id);
const state = {
  mode: null,           // 'live' | 'trace'
  modes: { live: false, trace: false },
  live: null,           // last /api/live
  trace: null,          // /api/trace
  traceTick: null,      // last /api/trace/tick
  traceIndex: 0,
  playing: null,        // interval id
  grid: null,           // { n, faulted: Map, layout }
  pollTimer: null,
};

// ---------- formatting ----------

function fmtInt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return Math.round(v).toLocaleString('en-US');
}

function fmtMs(v) {
  if (!v && v !== 0) return '–';
  if (v < 1) return v.toFixed(3);
  if (v < 10) return v.toFixed(2);
  if (v < 100) return v.toFixed(1);
  return Math.round(v).toString();
}

// Axis labels in ms: as many decimals as the scale needs, the same on every line.
function fmtAxisMs(v, max) {
  const d = max >= 20 ? 0 : max >= 2 ? 1 : max >= 0.2 ? 2 : 3;
  return v.toFixed(d);
}

function fmtRate(v) {
  if (!v) return '0';
  if (v >= 1e9) return (v / 1e9).toFixed(2) + 'G';
  if (v >= 1e6) return (v / 1e6).toFixed(2) + 'M';
  if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  return v.toFixed(v < 10 ? 1 : 0);
}

function setText(id, text, raw) {
  const el = $(id);
  if (!el) return;
  if (el.textContent !== text) el.textContent = text;
  if (raw !== undefined) el.dataset.value = String(raw);
}

// ---------- fetching ----------

async function getJson(url) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
  try {
    const res = await fetch(url, { cache: 'no-store', signal: ctrl.signal });
    if (!res.ok) throw new Error(url + ': HTTP ' + res.status);
    return await res.json();
  } finally {
    clearTimeout(timer);
  }
}

// ---------- canvas helpers ----------

function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, canvas.clientWidth);
  const h = Math.max(1, canvas.clientHeight);
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  // Quarter steps of these are round: 0.25, 0.3, 0.4, 0.5, 0.6, 1, 1.5, 2, 2.5.
  for (const m of [1, 1.2, 1.6, 2, 2.4, 4, 6, 8, 10]) {
    if (m * p >= v) return m * p;
  }
  return 10 * p;
}

// A line chart: x values, several series, optional cursor at an x value.
function drawChart(canvas, opts) {
  const { ctx, w, h } = prepare(canvas);
  const pad = { l: 46, r: 12, t: 18, b: 20 };
  const x = opts.x || [];
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  ctx.font = '11px system-ui, sans-serif';
  if (x.length === 0) {
    ctx.fillStyle = '#8b97b3';
    ctx.textAlign = 'center';
    ctx.fillText(opts.empty || 'no ticks yet', w / 2, h / 2);
    return;
  }
  let max = 0;
  for (const s of opts.series) for (const v of s.values) if (v > max) max = v;
  const ymax = niceMax(max);
  const x0 = x[0];
  const x1 = x[x.length - 1];
  const span = Math.max(1, x1 - x0);
  const px = (v) => pad.l + ((v - x0) / span) * pw;
  const py = (v) => pad.t + ph - (v / ymax) * ph;

  // Grid and y labels.
  ctx.strokeStyle = '#26324f';
  ctx.fillStyle = '#8b97b3';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    const y = Math.round(py(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.l, y);
    ctx.lineTo(w - pad.r, y);
    ctx.stroke();
    ctx.fillText((opts.fmt || fmtRate)(v, ymax), pad.l - 6, y);
  }
  // X labels.
  ctx.textBaseline = 'top';
  const xl = [x0, Math.round((x0 + x1) / 2), x1];
  xl.forEach((v, i) => {
    ctx.textAlign = i === 0 ? 'left' : i === 2 ? 'right' : 'center';
    ctx.fillText(fmtInt(v), px(v), h - pad.b + 5);
  });

  // Series.
  for (const s of opts.series) {
    if (!s.values.length) continue;
    ctx.beginPath();
    s.values.forEach((v, i) => {
      const X = px(x[i]);
      const Y = py(v);
      if (i === 0) ctx.moveTo(X, Y);
      else ctx.lineTo(X, Y);
    });
    if (s.fill) {
      ctx.save();
      ctx.lineTo(px(x[s.values.length - 1]), py(0));
      ctx.lineTo(px(x[0]), py(0));
      ctx.closePath();
      const g = ctx.createLinearGradient(0, pad.t, 0, pad.t + ph);
      g.addColorStop(0, s.fill);
      g.addColorStop(1, 'rgba(0,0,0,0)');
      ctx.fillStyle = g;
      ctx.fill();
      ctx.restore();
      ctx.beginPath();
      s.values.forEach((v, i) => {
        const X = px(x[i]);
        const Y = py(v);
        if (i === 0) ctx.moveTo(X, Y);
        else ctx.lineTo(X, Y);
      });
    }
    ctx.strokeStyle = s.color;
    ctx.globalAlpha = s.alpha || 1;
    ctx.lineWidth = s.width || 1.5;
    ctx.lineJoin = 'round';
    ctx.stroke();
    ctx.globalAlpha = 1;
  }

  // Cursor.
  if (opts.cursor !== undefined && opts.cursor !== null) {
    const X = Math.round(px(opts.cursor)) + 0.5;
    ctx.strokeStyle = '#e6ebf5';
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(X, pad.t);
    ctx.lineTo(X, pad.t + ph);
    ctx.stroke();
    ctx.setLineDash([]);
  }

  // Legend.
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  let lx = w - pad.r;
  for (const s of [...opts.series].reverse()) {
    if (!s.label) continue;
    const tw = ctx.measureText(s.label).width;
    ctx.fillStyle = '#c7d0e4';
    ctx.fillText(s.label, lx, 8);
    ctx.fillStyle = s.color;
    ctx.fillRect(lx - tw - 16, 7, 11, 2.5);
    lx -= tw + 30;
  }
}

// ---------- agent grid ----------

function gridLayout(n, w, h) {
  const per = Math.max(1, Math.ceil(n / Math.max(1, w * h)));
  const cells = Math.ceil(n / per);
  let s = Math.floor(Math.sqrt((w * h) / Math.max(1, cells)));
  s = Math.max(1, Math.min(44, s));
  let cols = Math.max(1, Math.floor(w / s));
  let rows = Math.ceil(cells / cols);
  while (rows * s > h && s > 1) {
    s -= 1;
    cols = Math.max(1, Math.floor(w / s));
    rows = Math.ceil(cells / cols);
  }
  const gap = s >= 14 ? 2 : s >= 5 ? 1 : 0;
  const ox = Math.floor((w - cols * s) / 2);
  return { per, cells, s, cols, rows, gap, ox, oy: 0 };
}

function drawGrid(n, faulted) {
  const canvas = $('agent-grid');
  const { ctx, w, h } = prepare(canvas);
  if (!n) {
    ctx.fillStyle = '#8b97b3';
    ctx.font = '12px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.fillText('no agents yet', w / 2, h / 2);
    state.grid = null;
    return;
  }
  const L = gridLayout(n, w, h);
  const size = L.s - L.gap;
  const round = size >= 10 && ctx.roundRect;
  // Live cells first, one colour, then faulted ones over them.
  ctx.fillStyle = LIVE_COLOR;
  ctx.globalAlpha = 0.78;
  if (round) ctx.beginPath();
  for (let c = 0; c < L.cells; c++) {
    const X = L.ox + (c % L.cols) * L.s;
    const Y = L.oy + Math.floor(c / L.cols) * L.s;
    if (round) ctx.roundRect(X, Y, size, size, 3);
    else ctx.fillRect(X, Y, size, size);
  }
  if (round) ctx.fill();
  ctx.globalAlpha = 1;
  for (const [agent, f] of faulted) {
    const c = Math.floor(agent / L.per);
    if (c >= L.cells) continue;
    const X = L.ox + (c % L.cols) * L.s;
    const Y = L.oy + Math.floor(c / L.cols) * L.s;
    ctx.fillStyle = KIND_COLORS[f.kind] || '#ef4444';
    if (round) {
      ctx.beginPath();
      ctx.roundRect(X, Y, size, size, 3);
      ctx.fill();
    } else {
      ctx.fillRect(X, Y, size, size);
    }
  }
  state.grid = { n, faulted, layout: L };
  const hint = L.per > 1 ? `${fmtInt(n)} agents · ${L.per} per cell` : `${fmtInt(n)} agents`;
  setText('grid-hint', hint);
}

// ---------- world grid (a GRID shared region, e.g. predator-prey) ----------

// Cell byte -> colour: 0 empty, 1 prey, 2 predator, then any other value.
const CELL_COLORS = ['#111827', '#22c55e', '#ef4444', '#38bdf8', '#f59e0b', '#a855f7'];

function drawWorld(grids) {
  const card = $('world-card');
  const g = grids && grids.length ? grids[0] : null;
  card.hidden = !g;
  if (!g) return;
  const canvas = $('world-grid');
  const { ctx, w, h } = prepare(canvas);
  const s = Math.max(1, Math.floor(Math.min(w / g.width, h / g.height)));
  const ox = Math.floor((w - s * g.width) / 2);
  const oy = Math.floor((h - s * g.height) / 2);
  ctx.fillStyle = CELL_COLORS[0];
  ctx.fillRect(ox, oy, s * g.width, s * g.height);
  const counts = {};
  for (let i = 0; i < g.width * g.height; i++) {
    const v = parseInt(g.cells.substr(2 * i, 2), 16);
    if (!v) continue;
    counts[v] = (counts[v] || 0) + 1;
    ctx.fillStyle = CELL_COLORS[v] || CELL_COLORS[CELL_COLORS.length - 1];
    ctx.fillRect(ox + (i % g.width) * s, oy + Math.floor(i / g.width) * s, s, s);
  }
  setText('world-hint', `region ${g.region} · ${g.width} × ${g.height} · ` +
    `${fmtInt(counts[1] || 0)} prey · ${fmtInt(counts[2] || 0)} predators`);
}

function drawLegend(faultedList) {
  const counts = {};
  for (const f of faultedList) counts[f.kind] = (counts[f.kind] || 0) + 1;
  const n = state.grid ? state.grid.n : 0;
  const parts = [`<span><i style="background:${LIVE_COLOR}"></i>running ${fmtInt(n - faultedList.length)}</span>`];
  for (const kind of Object.keys(counts).sort()) {
    const color = KIND_COLORS[kind] || '#ef4444';
    parts.push(`<span><i style="background:${color}"></i>${KIND_LABELS[kind] || kind} ${fmtInt(counts[kind])}</span>`);
  }
  const html = parts.join('');
  const el = $('legend');
  if (el.innerHTML !== html) el.innerHTML = html;
}

function setupTooltip() {
  const canvas = $('agent-grid');
  const tip = $('tooltip');
  canvas.addEventListener('mousemove', (e) => {
    const g = state.grid;
    if (!g) { tip.hidden = true; return; }
    const rect = canvas.getBoundingClientRect();
    const mx = e.clientX - rect.left;
    const my = e.clientY - rect.top;
    const L = g.layout;
    const col = Math.floor((mx - L.ox) / L.s);
    const row = Math.floor((my - L.oy) / L.s);
    const c = row * L.cols + col;
    if (col < 0 || col >= L.cols || row < 0 || c >= L.cells) { tip.hidden = true; return; }
    const first = c * L.per;
    const last = Math.min(g.n - 1, first + L.per - 1);
    let text;
    if (L.per === 1) {
      const f = g.faulted.get(first);
      text = `agent ${first} · ${f ? f.detail : 'running'}`;
    } else {
      let bad = 0;
      for (let a = first; a <= last; a++) if (g.faulted.has(a)) bad++;
      text = `agents ${first}–${last} · ${bad} faulted`;
    }
    tip.textContent = text;
    tip.hidden = false;
    tip.style.left = Math.min(mx + 12, rect.width - tip.offsetWidth - 4) + 'px';
    tip.style.top = (my + 14) + 'px';
  });
  canvas.addEventListener('mouseleave', () => { tip.hidden = true; });
}

// ---------- shared panels ----------

function renderFaults(list, withTick) {
  const rows = [];
  for (const f of list.slice(0, TABLE_ROWS)) {
    const color = KIND_COLORS[f.kind] || '#ef4444';
    const where = withTick && f.tick !== undefined ? ` (tick ${f.tick})` : '';
    rows.push(`<tr><td>${f.agent}</td><td><span class="dot" style="background:${color}"></span>${escapeHtml(KIND_LABELS[f.kind] || f.kind)}</td><td>${escapeHtml(f.detail)}${where}</td></tr>`);
  }
  const html = rows.length ? rows.join('') : '<tr class="empty"><td colspan="3">no faults</td></tr>';
  const body = $('fault-rows');
  if (body.innerHTML !== html) body.innerHTML = html;
  setText('fault-hint', list.length > TABLE_ROWS ? `first ${TABLE_ROWS} of ${fmtInt(list.length)}` : '');
}

function renderLog(lines) {
  const el = $('log');
  const atBottom = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
  const text = lines && lines.length ? lines.join('\n') : '(no log lines)';
  if (el.textContent !== text) {
    el.textContent = text;
    if (atBottom) el.scrollTop = el.scrollHeight;
  }
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function setStatus(s) {
  const pill = $('status');
  pill.dataset.state = s;
  setText('status', STATE_TEXT[s] || s);
  document.body.dataset.state = s;
}

function faultMap(list) {
  const m = new Map();
  for (const f of list) m.set(f.agent, f);
  return m;
}

// ---------- live mode ----------

function renderLive(v) {
  setStatus(v.state);
  const f = v.frame;
  setText('subtitle', `observing ws://${v.endpoint} · attach #${v.attaches}`);
  setText('tick', f ? fmtInt(f.tick) : '–', f ? f.tick : '');
  setText('agent-count', f ? fmtInt(f.agent_count) : '–', f ? f.agent_count : '');
  const nf = f ? f.faulted.length : 0;
  setText('faulted-count', f ? fmtInt(nf) : '–', nf);
  $('faulted-count').classList.toggle('bad', nf > 0);
  setText('tick-pq', v.stats.window ? `${fmtMs(v.stats.p50_ms)} · ${fmtMs(v.stats.p99_ms)} ms` : '–');
  setText('rate-label', 'messages / s');
  setText('msg-rate', v.stats.window ? fmtRate(v.stats.messages_per_s) : '–');
  setText('mailbox', f ? fmtInt(f.mailbox_depth_max) : '–');
  setText('msgs-last', f ? fmtInt(f.messages_last_tick) : '–');
  setText('msgs-total', f ? fmtInt(f.messages_total) : '–');
  setText('fuel', f ? fmtInt(f.fuel_last_tick) : '–');
  setText('tps', v.stats.window ? fmtRate(v.stats.ticks_per_s) : '–');
  setText('chain-head', f ? (/^0+$/.test(f.chain_head) ? 'no trace recorded' : f.chain_head) : '–');
  setText('tick-title', 'Tick time');
  setText('pq-label', 'tick p50 · p99');
  setText('tick-hint', 'ms per tick · rolling p50 / p99 over 100 ticks');
  setText('msgs-hint', `per tick · mean ${v.stats.window ? fmtRate(v.stats.messages_per_tick) : '–'}`);
  const s = v.series;
  drawChart($('chart-tick'), {
    x: s.tick,
    series: [
      { values: s.tick_ms, color: '#64748b', width: 1, alpha: 0.8, label: 'tick' },
      { values: s.p50_ms, color: '#38bdf8', width: 2, label: 'p50' },
      { values: s.p99_ms, color: '#c084fc', width: 2, label: 'p99' },
    ],
    fmt: fmtAxisMs,
    empty: v.state === 'waiting' ? 'waiting for a run' : 'no ticks yet',
  });
  drawChart($('chart-msgs'), {
    x: s.tick,
    series: [{ values: s.messages, color: '#22c55e', width: 1.8, fill: 'rgba(34,197,94,0.28)', label: 'messages' }],
    empty: v.state === 'waiting' ? 'waiting for a run' : 'no ticks yet',
  });
  drawSpark($('chart-queue'), s.mailbox_depth_max);
  const list = f ? f.faulted : [];
  drawGrid(f ? f.agent_count : 0, faultMap(list));
  drawWorld(f ? f.grids : null);
  drawLegend(list);
  renderFaults(list, false);
  renderLog(f ? f.log_tail : []);
  setText('log-hint', f ? `${f.log_tail.length} newest line${f.log_tail.length === 1 ? '' : 's'}` : '');
  setText('footer-right', v.since_last_ms !== null && v.since_last_ms !== undefined
    ? `last update ${(v.since_last_ms / 1000).toFixed(1)} s ago` : '');
}

function drawSpark(canvas, values) {
  const { ctx, w, h } = prepare(canvas);
  if (!values || !values.length) return;
  let max = 0;
  for (const v of values) if (v > max) max = v;
  const top = 16;
  ctx.beginPath();
  values.forEach((v, i) => {
    const X = (i / Math.max(1, values.length - 1)) * (w - 2) + 1;
    const Y = h - 2 - (v / Math.max(1, max)) * (h - top - 2);
    if (i === 0) ctx.moveTo(X, Y);
    else ctx.lineTo(X, Y);
  });
  ctx.strokeStyle = '#f59e0b';
  ctx.lineWidth = 1.5;
  ctx.stroke();
  ctx.fillStyle = '#8b97b3';
  ctx.font = '10px system-ui, sans-serif';
  ctx.textAlign = 'left';
  ctx.textBaseline = 'top';
  ctx.fillText(`deepest mailbox per tick · max ${fmtInt(max)}`, 2, 1);
}

async function pollLive() {
  if (state.mode !== 'live') return;
  try {
    const v = await getJson('/api/live');
    state.live = v;
    if (state.mode === 'live') renderLive(v);
  } catch (e) {
    if (state.mode === 'live') {
      setStatus('offline');
      setText('subtitle', 'the UI process is not answering');
    }
  } finally {
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(pollLive, POLL_MS);
  }
}

// ---------- trace mode ----------

async function loadTrace() {
  const t = await getJson('/api/trace');
  state.trace = t;
  const range = $('scrub-range');
  range.max = String(Math.max(0, t.count - 1));
  range.value = '0';
  state.traceIndex = 0;
  return t;
}

let tickRequest = 0;
async function showTraceTick(index) {
  const t = state.trace;
  if (!t || !t.count) return;
  index = Math.max(0, Math.min(t.count - 1, index));
  state.traceIndex = index;
  $('scrub-range').value = String(index);
  const mine = ++tickRequest;
  const d = await getJson(`/api/trace/tick?i=${index}`);
  if (mine !== tickRequest) return; // a newer request is on its way
  state.traceTick = d;
  renderTrace();
}

function renderTrace() {
  drawWorld(null);
  const t = state.trace;
  const d = state.traceTick;
  if (!t) return;
  setStatus('trace');
  setText('subtitle', t.path);
  const h = t.header;
  setText('agent-count', fmtInt(h.agent_count), h.agent_count);
  setText('rate-label', 'messages this tick');
  setText('tick-pq', fmtInt(t.count));
  setText('tick-title', 'Faulted agents');
  setText('pq-label', 'ticks in trace');
  setText('tick-hint', 'so far, per tick (traces record no wall time)');
  setText('msgs-hint', 'per tick · whole trace');
  const s = t.series;
  if (!d) {
    drawChart($('chart-tick'), { x: [], series: [], empty: t.count ? 'loading…' : 'the trace has no ticks' });
    drawChart($('chart-msgs'), { x: [], series: [], empty: t.count ? 'loading…' : 'the trace has no ticks' });
    drawGrid(h.agent_count, new Map());
    drawLegend([]);
    setText('scrub-label', t.count ? '–' : 'no ticks');
    return;
  }
  setText('tick', fmtInt(d.tick), d.tick);
  setText('faulted-count', fmtInt(d.faulted.length), d.faulted.length);
  $('faulted-count').classList.toggle('bad', d.faulted.length > 0);
  setText('msg-rate', fmtInt(d.messages));
  setText('mailbox', 'not recorded');
  setText('msgs-last', fmtInt(d.messages));
  setText('msgs-total', fmtInt(d.messages_total));
  setText('fuel', 'not recorded');
  setText('tps', 'not recorded');
  setText('chain-head', d.chain);
  setText('scrub-label', `tick ${fmtInt(d.tick)} · record ${fmtInt(d.index + 1)} / ${fmtInt(t.count)}`);
  drawChart($('chart-tick'), {
    x: s.tick,
    series: [{ values: s.faulted_total, color: '#ef4444', width: 1.8, fill: 'rgba(239,68,68,0.22)', label: 'faulted' }],
    cursor: d.tick,
    fmt: fmtInt,
  });
  drawChart($('chart-msgs'), {
    x: s.tick,
    series: [{ values: s.messages, color: '#22c55e', width: 1.8, fill: 'rgba(34,197,94,0.28)', label: 'messages' }],
    cursor: d.tick,
  });
  drawSpark($('chart-queue'), []);
  drawGrid(h.agent_count, faultMap(d.faulted));
  drawLegend(d.faulted);
  renderFaults(d.faulted, true);
  const lines = [
    `seed ${h.seed} · ${h.agent_count} agents · runtime ${h.runtime_version}`,
    ...h.modules.map((m) => `module ${m.name} blake3 ${m.blake3.slice(0, 16)}…`),
    ...h.notes.map((n) => `note ${n}`),
    `tick ${d.tick}: ${d.messages} messages, ${d.faults.length} new faults, ${d.inferences} inferences, ${d.inputs} inputs`,
    `effects digest  ${d.effects_digest}`,
    `workload digest ${d.workload_digest}`,
  ];
  if (t.torn_tail) lines.push('the trace ends in a torn record (the run was cut short); shown up to the last whole one');
  if (t.stopped) lines.push(`reading stopped: ${t.stopped}`);
  renderLog(lines);
  setText('log-hint', 'trace header and this tick');
  setText('footer-right', `${fmtInt(t.count)} ticks · chain head ${t.chain_head ? t.chain_head.slice(0, 16) + '…' : '–'}`);
}

function setupScrub() {
  const range = $('scrub-range');
  range.addEventListener('input', () => showTraceTick(Number(range.value)).catch(() => {}));
  $('scrub-first').addEventListener('click', () => showTraceTick(0).catch(() => {}));
  $('scrub-last').addEventListener('click', () => showTraceTick(Infinity).catch(() => {}));
  $('scrub-prev').addEventListener('click', () => showTraceTick(state.traceIndex - 1).catch(() => {}));
  $('scrub-next').addEventListener('click', () => showTraceTick(state.traceIndex + 1).catch(() => {}));
  $('scrub-play').addEventListener('click', togglePlay);
  document.addEventListener('keydown', (e) => {
    if (state.mode !== 'trace' || e.target.tagName === 'INPUT' && e.key === ' ') return;
    if (e.key === 'ArrowLeft') showTraceTick(state.traceIndex - 1).catch(() => {});
    else if (e.key === 'ArrowRight') showTraceTick(state.traceIndex + 1).catch(() => {});
    else if (e.key === ' ') { e.preventDefault(); togglePlay(); }
  });
}

function togglePlay() {
  const btn = $('scrub-play');
  if (state.playing) {
    clearInterval(state.playing);
    state.playing = null;
    btn.textContent = '▶';
    return;
  }
  const t = state.trace;
  if (!t || !t.count) return;
  if (state.traceIndex >= t.count - 1) state.traceIndex = -1;
  btn.textContent = '❚❚';
  state.playing = setInterval(() => {
    if (state.traceIndex >= t.count - 1) { togglePlay(); return; }
    showTraceTick(state.traceIndex + 1).catch(() => {});
  }, 120);
}

// ---------- modes ----------

async function setMode(mode) {
  state.mode = mode;
  document.body.dataset.mode = mode;
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('on', b.dataset.mode === mode);
  $('scrub').hidden = mode !== 'trace';
  if (mode === 'live') {
    pollLive();
  } else {
    clearTimeout(state.pollTimer);
    if (!state.trace) {
      await loadTrace();
      await showTraceTick(0);
    } else {
      renderTrace();
    }
  }
}

async function main() {
  setupTooltip();
  setupScrub();
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => setMode(b.dataset.mode));
  window.addEventListener('resize', () => {
    if (state.mode === 'live' && state.live) renderLive(state.live);
    else if (state.mode === 'trace') renderTrace();
  });
  let modes;
  for (;;) {
    try {
      modes = await getJson('/api/mode');
      break;
    } catch (e) {
      setStatus('offline');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  state.modes = modes;
  $('tabs').hidden = !(modes.live && modes.trace);
  setText('footer-left', `wasm-engine ${modes.version} · read-only view · the run never waits on this page`);
  await setMode(modes.live ? 'live' : 'trace');
}

main();
