/*
 * tiltrs web UI: one classic script, no build step, no dependencies, no network
 * access except the session's own API (docs/api.md).
 *
 * What each part owns (in file order):
 *  1. Helpers      el()/text helpers, duration formatting, http(s)-only link check,
 *                  POST with the session token (meta tiltrs-token -> X-Tiltrs-Token), toasts.
 *  2. State        the /api/events EventSource: `state.resources` (Map name -> RESOURCE),
 *                  `state.order`, `state.session`; the #connection indicator; reopening
 *                  the stream when the browser gives up on it.
 *  3. Header       Tiltfile status, #tiltfile-error banner, ok/error/pending counts.
 *  4. Resources    the sidebar: one group element per label (first label; "unlabeled"
 *                  last), one row element per resource keyed by name and updated in place,
 *                  only for rows that changed, at most once per animation frame.
 *  5. ANSI         a small SGR parser (16/256/true colours, bold/dim/italic/underline)
 *                  producing {t, c, s} segments; all other escape sequences are stripped.
 *                  Parsed parameter lists and class strings are reused across lines.
 *  6. Logs         the current view (all resources or one), its in-memory ring of lines
 *                  (MEM_CAP), its log-stream EventSource, the filter / errors-only toggle,
 *                  the "N older lines were dropped" notice, and rendering: per frame, within
 *                  FRAME_BUDGET_MS, the newest lines that fit (the rest: a clickable gap),
 *                  at most FOLLOW_DOM_CAP kept (whole chunks trimmed, #log never emptied but
 *                  on a view / filter change); paused (scrolled up): new lines only counted.
 *  7. Wiring       the frame scheduler, DOM event handlers, startup.
 *
 * Security: nothing from the server is ever parsed as HTML. Names, errors and process
 * output reach the page only through textContent / text nodes; styles are set from
 * numbers we computed; links are followed only for http(s) URLs, with rel=noopener.
 */
(() => {
  'use strict';

  const FOLLOW_DOM_CAP = 2000;   // lines kept in #log while following (plus < one chunk)
  const PAUSED_DOM_CAP = 10000;  // while paused, older / skipped lines restored up to this
  const FRAME_BUDGET_MS = 8;     // log rendering work per frame (new lines, then backfill)
  const MIN_FIT = 100, MAX_FIT = 1500;  // bounds on the lines rendered per frame
  const BACKFILL_LINES = 300;    // older lines restored per calm frame, at most
  const CHUNK = 100;             // lines per .log-chunk element inside #log
  const MEM_CAP = 50000;         // lines kept in memory for the current view
  const BACKLOG_ALL = 5000, BACKLOG_ONE = 20000;  // lines read at a switch to all / one
  const UNLABELED = '\u0000unlabeled';

  // ---------------------------------------------------------------- 1. Helpers

  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = String(text);
    return e;
  }
  function setText(e, t) { if (e.textContent !== t) e.textContent = t; }
  function parseJSON(s) { try { return JSON.parse(s); } catch (_) { return null; } }

  function fmtDuration(ms) {
    if (ms == null || !isFinite(ms)) return '';
    if (ms < 0) ms = 0;
    if (ms < 1000) return Math.round(ms) + 'ms';
    const s = ms / 1000;
    if (s < 60) return (s < 10 ? s.toFixed(1) : String(Math.floor(s))) + 's';
    const m = Math.floor(s / 60), r = Math.floor(s % 60);
    if (m < 60) return m + 'm' + (r ? ' ' + r + 's' : '');
    return Math.floor(m / 60) + 'h ' + (m % 60) + 'm';
  }

  // Only http(s) links are clickable (a Tiltfile could declare a javascript: URL).
  function safeUrl(u) {
    try {
      const x = new URL(String(u), location.href);
      return x.protocol === 'http:' || x.protocol === 'https:' ? x.href : null;
    } catch (_) { return null; }
  }

  const TOKEN = (document.querySelector('meta[name="tiltrs-token"]') || {}).content || '';

  async function post(path) {
    const res = await fetch(path, { method: 'POST', headers: { 'X-Tiltrs-Token': TOKEN } });
    if (!res.ok) {
      let msg = res.status + ' ' + res.statusText;
      const j = await res.json().catch(() => null);
      if (j && j.error) msg = String(j.error);
      if (res.status === 401) msg += ' (the session may have restarted: reload the page)';
      throw new Error(msg);
    }
  }

  function toast(msg) {
    const t = el('div', 'toast', msg);
    $('toasts').appendChild(t);
    setTimeout(() => t.remove(), 6000);
  }

  // ---------------------------------------------------------------- 2. State

  const state = {
    resources: new Map(),  // name -> RESOURCE (latest seen)
    order: [],             // names in Tilt's order
    session: null,
    sessionId: null,       // pid:start_time, to notice a restarted server
  };
  let eventsSource = null;
  let eventsRetry = 0;

  function setConnected(up) {
    const c = $('connection');
    setText(c, up ? 'connected' : 'disconnected');
    c.className = up ? 'conn-up' : 'conn-down';
  }

  function connectEvents() {
    if (eventsSource) eventsSource.close();
    const es = new EventSource('/api/events');
    eventsSource = es;
    es.addEventListener('open', () => { eventsRetry = 0; setConnected(true); });
    es.addEventListener('snapshot', (ev) => {
      const d = parseJSON(ev.data);
      if (d) { setConnected(true); applySnapshot(d); }
    });
    es.addEventListener('update', (ev) => {
      const d = parseJSON(ev.data);
      if (d) applyUpdate(d);
    });
    es.addEventListener('error', () => {
      setConnected(false);
      // The browser retries by itself unless the response was not an event stream
      // (e.g. a 5xx while the server restarts); then it closes and we retry ourselves.
      if (es.readyState === EventSource.CLOSED && es === eventsSource) {
        const delay = Math.min(10000, 500 * 2 ** eventsRetry++);
        setTimeout(() => { if (es === eventsSource) connectEvents(); }, delay);
      }
    });
  }

  function setSession(s) {
    if (!s) return;
    state.session = s;
    headerDirty = true;
    const id = s.pid + ':' + s.start_time;
    if (state.sessionId && state.sessionId !== id) selectView(view.resource); // new server: seqs restart
    state.sessionId = id;
  }

  function applySnapshot(d) {
    const list = Array.isArray(d.resources) ? d.resources : [];
    state.resources = new Map(list.map((r) => [r.name, r]));
    state.order = Array.isArray(d.order) ? d.order : list.map((r) => r.name);
    setSession(d.session);
    for (const name of state.resources.keys()) dirtyRows.add(name);
    structureDirty = true;
    schedule();
  }

  function applyUpdate(d) {
    setSession(d.session);
    if (Array.isArray(d.order)) {
      if (d.order.join('\n') !== state.order.join('\n')) structureDirty = true;
      state.order = d.order;
      const keep = new Set(d.order);
      for (const name of state.resources.keys()) if (!keep.has(name)) state.resources.delete(name);
    }
    for (const r of Array.isArray(d.resources) ? d.resources : []) {
      if (!r || typeof r.name !== 'string') continue;
      const rec = rows.get(r.name);
      if (!rec || rec.group !== groupKey(r)) structureDirty = true;
      state.resources.set(r.name, r);
      dirtyRows.add(r.name);
    }
    headerDirty = true;
    schedule();
  }

  // ---------------------------------------------------------------- 3. Header

  const STATUS_CLASSES = new Set(['ok', 'error', 'building', 'pending', 'none', 'disabled']);
  const statusClass = (s) => 'st-' + (STATUS_CLASSES.has(s) ? s : 'none');

  function renderHeader() {
    const tf = state.session && state.session.tiltfile;
    const st = $('tiltfile-status');
    const errEl = $('tiltfile-error');
    let cls = 'tf-loading', text = 'Tiltfile: connecting…', dot = 'st-none';
    if (tf) {
      if (tf.loading) { text = 'Tiltfile: loading…'; dot = 'st-building'; }
      else if (tf.error) { cls = 'tf-error'; text = 'Tiltfile: error'; dot = 'st-error'; }
      else if (!tf.loaded_once) { text = 'Tiltfile: not loaded'; dot = 'st-pending'; }
      else {
        cls = 'tf-ok'; dot = 'st-ok';
        text = 'Tiltfile: ok' + (tf.last_load_ms != null ? ' (' + fmtDuration(tf.last_load_ms) + ')' : '');
      }
      const warnings = Array.isArray(tf.warnings) ? tf.warnings : [];
      if (warnings.length) text += ' · ' + warnings.length + ' warning' + (warnings.length > 1 ? 's' : '');
      st.title = (tf.path || 'Tiltfile') + (warnings.length ? '\n' + warnings.join('\n') : '');
    }
    setText(st, text);
    st.className = 'tf-status ' + cls;
    $('tiltfile-dot').className = 'dot ' + dot;
    const err = tf && tf.error ? String(tf.error) : '';
    setText(errEl, err);
    errEl.hidden = !err;

    let ok = 0, error = 0, pending = 0;
    for (const r of state.resources.values()) {
      if (r.status === 'ok') ok++;
      else if (r.status === 'error') error++;
      else if (r.status === 'pending' || r.status === 'building') pending++;
    }
    setText($('count-ok'), String(ok));
    setText($('count-error'), String(error));
    setText($('count-pending'), String(pending));
    setText($('count-total'), String(state.resources.size));
    $('empty-list').hidden = state.resources.size > 0;
    document.title = (error ? '✖ ' + error + ' · ' : '') + 'tiltrs';
  }

  // ---------------------------------------------------------------- 4. Resources

  const rows = new Map();    // name -> row record (see createRow)
  const groups = new Map();  // group key -> {el, body, summary}
  const dirtyRows = new Set();
  let structureDirty = false;
  let headerDirty = true;
  // Collapsed label groups survive reloads (storage may be unavailable: then they don't).
  const store = (v) => { try { if (v !== undefined) localStorage.setItem('tiltrs.collapsed', v); return localStorage.getItem('tiltrs.collapsed'); } catch (_) { return null; } };
  const saved = parseJSON(store() || '[]');
  const collapsed = new Set(Array.isArray(saved) ? saved : []);

  const groupKey = (r) => (Array.isArray(r.labels) && r.labels.length ? String(r.labels[0]) : UNLABELED);
  const TYPE_SHORT = { local: 'local', k8s: 'k8s', docker_compose: 'compose', k8s_custom_deploy: 'k8s custom' };

  function ensureGroup(key) {
    let g = groups.get(key);
    if (g) return g;
    const name = key === UNLABELED ? 'unlabeled' : key;
    const wrap = el('section', 'group');
    wrap.setAttribute('data-group', name);
    const header = button('group-header');
    const summary = el('span', 'group-summary');
    header.append(el('span', 'caret'), el('span', 'group-name', name), summary);
    const body = el('div', 'group-body');
    wrap.append(header, body);
    g = { el: wrap, body, summary, header, key };
    header.addEventListener('click', () => {
      if (collapsed.has(key)) collapsed.delete(key); else collapsed.add(key);
      store(JSON.stringify([...collapsed]));
      applyCollapsed(g);
    });
    applyCollapsed(g);
    groups.set(key, g);
    return g;
  }
  function applyCollapsed(g) {
    const c = collapsed.has(g.key);
    g.el.classList.toggle('collapsed', c);
    g.body.hidden = c;
    g.header.setAttribute('aria-expanded', String(!c));
  }

  function button(cls, text, action) {
    const b = el('button', cls, text);
    b.type = 'button';
    if (action) b.setAttribute('data-action', action);
    return b;
  }

  function createRow(name) {
    const row = el('div', 'resource');
    row.setAttribute('data-resource', name);
    const main = el('div', 'row-main');
    const dot = el('span', 'dot'), type = el('span', 'resource-type'), dur = el('span', 'resource-duration');
    const nameBtn = button('resource-name', name);
    nameBtn.title = name;
    const trig = button('btn-trigger', '↻', 'trigger'), tog = button('btn-toggle', null, 'toggle-enable');
    main.append(dot, nameBtn, type, dur, trig, tog);
    const err = el('div', 'resource-error'), links = el('div', 'resource-links');
    err.hidden = links.hidden = true;
    row.append(main, err, links);
    const rec = { name, el: row, dot, type, dur, trig, tog, err, links, key: '', linksKey: '', group: null, buildStart: null };
    rows.set(name, rec);
    return rec;
  }

  function updateRow(rec, r) {
    const pending = Array.isArray(r.pending_changes) ? r.pending_changes.length : 0;
    const key = JSON.stringify([r.status, r.enabled, r.type, r.trigger_mode, pending, r.queued,
      r.last_error, r.last_build, r.current_build, r.update_status, r.runtime_status, r.restarts,
      r.links, r.port_forwards, r.name === view.resource]);
    if (key === rec.key) return;
    rec.key = key;
    const row = rec.el;
    row.setAttribute('data-status', String(r.status));
    row.classList.toggle('is-disabled', r.enabled === false);
    row.classList.toggle('selected', r.name === view.resource);
    rec.dot.className = 'dot ' + statusClass(r.status);
    rec.dot.title = String(r.status);
    setText(rec.type, TYPE_SHORT[r.type] || String(r.type || ''));
    rec.buildStart = r.current_build && r.current_build.start ? r.current_build.start : null;
    setText(rec.dur, rec.buildStart ? fmtDuration(Date.now() - rec.buildStart)
      : r.last_build && r.last_build.duration_ms != null ? fmtDuration(r.last_build.duration_ms) : '');
    rec.dur.title = r.current_build ? 'building: ' + (r.current_build.reason || '')
      : r.last_build ? 'last build: ' + (r.last_build.reason || '') + ' (' + (r.last_build.result || '') + ')' : '';

    const manual = r.trigger_mode === 'manual';
    const enabled = r.enabled !== false;
    rec.trig.disabled = !enabled;
    rec.trig.classList.toggle('highlight', enabled && (manual || pending > 0 || !!r.queued));
    rec.trig.title = !enabled ? 'Resource is disabled'
      : (r.queued ? String(r.queued) + ' — ' : pending ? pending + ' pending change(s) — ' : '')
        + 'Trigger an update of ' + r.name + (manual ? ' (manual)' : '');
    rec.tog.setAttribute('aria-pressed', String(enabled));
    rec.tog.title = (enabled ? 'Disable ' : 'Enable ') + r.name;
    rec.tog.setAttribute('aria-label', rec.tog.title);

    const e = r.last_error ? String(r.last_error) : '';
    setText(rec.err, e);
    rec.err.title = e;
    rec.err.hidden = !e;

    const lk = JSON.stringify([r.links, r.port_forwards]);
    if (lk !== rec.linksKey) {
      rec.linksKey = lk;
      renderLinks(rec.links, r);
    }
  }

  function renderLinks(box, r) {
    const seen = new Set();
    const items = [];
    for (const l of Array.isArray(r.links) ? r.links : []) {
      if (l && l.url) items.push({ url: l.url, text: l.name || String(l.url).replace(/^https?:\/\//, '').replace(/\/$/, '') });
    }
    for (const p of Array.isArray(r.port_forwards) ? r.port_forwards : []) {
      if (!p) continue;
      const url = p.url || 'http://' + (p.host || 'localhost') + ':' + p.local_port + '/' + (p.link_path || '').replace(/^\//, '');
      // Kubernetes port-forwards carry their state once deployed: waiting, active or error.
      const state = typeof p.state === 'string' ? p.state : '';
      const label = p.name || (p.host || 'localhost') + ':' + p.local_port;
      items.push({
        url, state,
        text: state && state !== 'active' ? label + ' (' + state + ')' : label,
        note: state ? 'port-forward ' + state + (p.pod ? ' to pod ' + p.pod : '') + (p.error ? ': ' + p.error : '') : '',
      });
    }
    const out = [];
    for (const it of items) {
      const href = safeUrl(it.url);
      if (!href) { out.push(el('span', 'resource-link bad', it.text)); continue; }
      if (seen.has(href)) continue;
      seen.add(href);
      const a = el('a', 'resource-link' + (it.state ? ' pf-' + it.state : ''), it.text);
      Object.assign(a, { href, target: '_blank', rel: 'noopener noreferrer', title: it.note ? href + ' — ' + it.note : href });
      out.push(a);
    }
    box.replaceChildren(...out);
    box.hidden = !box.childElementCount;
  }

  // Place group and row elements in order, creating / removing as needed.
  function renderStructure() {
    const byGroup = new Map();
    for (const name of state.order) {
      const r = state.resources.get(name);
      if (!r) continue;
      const k = groupKey(r);
      if (!byGroup.has(k)) byGroup.set(k, []);
      byGroup.get(k).push(name);
    }
    const keys = [...byGroup.keys()].sort((a, b) =>
      a === UNLABELED ? 1 : b === UNLABELED ? -1 : a.localeCompare(b));
    const list = $('resource-list');
    for (const [k, g] of groups) if (!byGroup.has(k)) { g.el.remove(); groups.delete(k); }
    for (const [n, rec] of rows) if (!state.resources.has(n)) { rec.el.remove(); rows.delete(n); }
    keys.forEach((k, i) => {
      const g = ensureGroup(k);
      if (list.children[i] !== g.el) list.insertBefore(g.el, list.children[i] || null);
      const names = byGroup.get(k);
      names.forEach((n, j) => {
        let rec = rows.get(n);
        if (!rec) { rec = createRow(n); dirtyRows.add(n); }
        rec.group = k;
        if (g.body.children[j] !== rec.el) g.body.insertBefore(rec.el, g.body.children[j] || null);
      });
      // Anything left after them moved to a later group; it is re-inserted there.
      while (g.body.children.length > names.length) g.body.lastChild.remove();
    });
  }

  function renderGroupSummaries() {
    const counts = new Map();
    for (const rec of rows.values()) {
      const r = state.resources.get(rec.name);
      if (!r || rec.group == null) continue;
      const c = counts.get(rec.group) || { n: 0, err: 0 };
      c.n++;
      if (r.status === 'error') c.err++;
      counts.set(rec.group, c);
    }
    for (const [k, g] of groups) {
      const c = counts.get(k) || { n: 0, err: 0 };
      setText(g.summary, (c.err ? c.err + ' err · ' : '') + c.n);
      g.summary.classList.toggle('has-error', c.err > 0);
    }
  }

  function renderResources() {
    const restructure = structureDirty;
    if (structureDirty) { structureDirty = false; renderStructure(); }
    if (!dirtyRows.size && !restructure) return;
    for (const name of dirtyRows) {
      const rec = rows.get(name), r = state.resources.get(name);
      if (rec && r) updateRow(rec, r);
    }
    dirtyRows.clear();
    renderGroupSummaries();
  }

  // Elapsed time of running builds.
  setInterval(() => {
    for (const rec of rows.values()) {
      if (rec.buildStart) setText(rec.dur, fmtDuration(Date.now() - rec.buildStart));
    }
  }, 1000);

  // ---------------------------------------------------------------- 5. ANSI

  // CSI, OSC, DCS/SOS/PM/APC, charset designations, then any other ESC + one char.
  const ESC_RE = /\x1b(?:\[([0-?]*)[ -\/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[()*+\-./].|[\s\S]?)/g;
  const CTRL_RE = /[\x00-\x08\x0b-\x1f\x7f]/g;
  const NEEDS_CLEAN_RE = /[\x00-\x08\x0b-\x1f\x7f]/;

  // A carriage return inside a line means "overwrite": keep what follows the last one.
  function stripCR(text) {
    let t = text;
    while (t.endsWith('\r') || t.endsWith('\n')) t = t.slice(0, -1);
    const i = t.lastIndexOf('\r');
    return i >= 0 ? t.slice(i + 1) : t;
  }

  function xterm256(n) {
    if (n >= 232) { const v = 8 + 10 * (n - 232); return 'rgb(' + v + ',' + v + ',' + v + ')'; }
    const lv = [0, 95, 135, 175, 215, 255];
    n -= 16;
    return 'rgb(' + lv[Math.floor(n / 36) % 6] + ',' + lv[Math.floor(n / 6) % 6] + ',' + lv[n % 6] + ')';
  }
  const clamp255 = (v) => Math.max(0, Math.min(255, v | 0));

  // Reads an extended colour (38/48) from codes starting at i; returns [colour, lastIndex].
  // A colour is a number 0-15 (a palette class) or an 'rgb()' string (inline style).
  function extColor(codes, i) {
    const mode = codes[i + 1];
    if (mode === 5 && codes.length > i + 2) {
      const n = codes[i + 2];
      return [n >= 0 && n < 16 ? n : n < 256 ? xterm256(n) : null, i + 2];
    }
    if (mode === 2 && codes.length > i + 4) {
      return ['rgb(' + clamp255(codes[i + 2]) + ',' + clamp255(codes[i + 3]) + ',' + clamp255(codes[i + 4]) + ')', i + 4];
    }
    return [null, codes.length];
  }

  // Parsed SGR parameter lists, by their text (logs repeat a handful of them).
  const sgrCache = new Map();
  function sgrCodes(params) {
    let codes = sgrCache.get(params);
    if (codes) return codes;
    if (sgrCache.size > 1000) sgrCache.clear();
    // Colon forms (38:5:n, 38:2::r:g:b) are read like their ';' forms.
    codes = params.replace(/([34]8):2::/g, '$1:2:').split(/[;:]/).map((x) => (x === '' ? 0 : Number(x)));
    sgrCache.set(params, codes);
    return codes;
  }

  function applySGR(st, params) {
    const codes = sgrCodes(params);
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) { st.fg = st.bg = null; st.bold = st.dim = st.italic = st.underline = false; }
      else if (c === 1) st.bold = true;
      else if (c === 2) st.dim = true;
      else if (c === 3) st.italic = true;
      else if (c === 4) st.underline = true;
      else if (c === 22) st.bold = st.dim = false;
      else if (c === 23) st.italic = false;
      else if (c === 24) st.underline = false;
      else if (c >= 30 && c <= 37) st.fg = c - 30;
      else if (c >= 90 && c <= 97) st.fg = c - 90 + 8;
      else if (c >= 40 && c <= 47) st.bg = c - 40;
      else if (c >= 100 && c <= 107) st.bg = c - 100 + 8;
      else if (c === 39) st.fg = null;
      else if (c === 49) st.bg = null;
      else if (c === 38 || c === 48) {
        const [col, end] = extColor(codes, i);
        if (col !== null) { if (c === 38) st.fg = col; else st.bg = col; }
        i = end;
      }
    }
  }

  const SGR_PARAMS_RE = /^[\d;:]*$/;

  // text -> [{t: text, c: class or '', s: {color, background} or null}]; the class and
  // style are recomputed only when an SGR sequence changes the state.
  function ansiSegments(text) {
    const segs = [];
    const st = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };
    let c = '', s = null;
    const push = (t) => {
      if (NEEDS_CLEAN_RE.test(t)) t = t.replace(CTRL_RE, '');
      if (t) segs.push({ t, c, s });
    };
    let last = 0, m;
    ESC_RE.lastIndex = 0;
    while ((m = ESC_RE.exec(text))) {
      if (m.index > last) push(text.slice(last, m.index));
      last = ESC_RE.lastIndex;
      if (m[2] === 'm' && SGR_PARAMS_RE.test(m[1])) {
        applySGR(st, m[1]);
        c = ''; s = null;
        if (typeof st.fg === 'number') c += ' a-f' + st.fg; else if (st.fg) s = { color: st.fg };
        if (typeof st.bg === 'number') c += ' a-b' + st.bg; else if (st.bg) (s = s || {}).background = st.bg;
        if (st.bold) c += ' a-bold';
        if (st.dim) c += ' a-dim';
        if (st.italic) c += ' a-italic';
        if (st.underline) c += ' a-underline';
        c = c.slice(1);
      }
    }
    if (last < text.length) push(text.slice(last));
    return segs;
  }

  // Plain text of a line (escapes stripped), cached on the line for filtering.
  function plainOf(line) {
    if (line.p === undefined) {
      const t = typeof line.text === 'string' ? line.text : String(line.text ?? '');
      line.p = NEEDS_CLEAN_RE.test(t) ? stripCR(t).replace(ESC_RE, '').replace(CTRL_RE, '') : t;
    }
    return line.p;
  }

  // ---------------------------------------------------------------- 6. Logs

  const logEl = $('log');
  const view = {
    resource: null,   // null = all resources; else a resource name or '(Tiltfile)'
    gen: 0,           // bumped on every view switch; stale callbacks compare it
    lines: [],        // ring of at most ~MEM_CAP lines (oldest first)
    lastSeq: 0,       // newest seq seen; the stream resumes after it
    pending: [],      // matching lines not yet in the DOM (at most FOLLOW_DOM_CAP)
    skip: 0,          // matching lines dropped from `pending` since the last render
    clear: true,      // empty #log on the next frame
    backfill: true,   // #log lacks older lines that are in `lines`: prepend them when calm
    heldBack: 0,      // new lines that arrived while paused (for the follow button)
    msPerLine: 0.03,  // measured rendering cost of one line (moving average)
    dropped: 0,       // lines the stream reported dropped
    skipped: 0,       // older lines the backlog read did not return
    source: null,
    retry: 0,
    follow: true,     // auto-scroll
    autoTop: 0,       // scrollTop last seen at the bottom (a smaller one: user scrolled up)
  };
  const filter = { needle: '', errorsOnly: false };

  function matches(line) {
    if (filter.errorsOnly && line.kind !== 'error') return false;
    return !filter.needle || plainOf(line).toLowerCase().includes(filter.needle);
  }

  const SPAN_COLORS = 10;
  function spanClass(span) {
    if (span === '(Tiltfile)') return 'span-tf';
    let h = 0;
    for (let i = 0; i < span.length; i++) h = (h * 31 + span.charCodeAt(i)) | 0;
    return 'span-c' + (Math.abs(h) % SPAN_COLORS);
  }

  // A line starts as a clone of its template (class, data-span and prefix already set):
  // one per span, kind and view shape, rebuilt when the cache grows too big.
  const lineTemplates = new Map();
  function lineTemplate(span, kind, prefixed) {
    const key = (prefixed ? '1' : '0') + kind + '\u0000' + span;
    let t = lineTemplates.get(key);
    if (!t) {
      t = el('div', 'log-line' + (kind ? ' log-' + kind : '') + (prefixed ? ' with-prefix' : ''));
      t.setAttribute('data-span', span);
      if (prefixed) t.appendChild(el('span', 'log-prefix ' + spanClass(span), span));
      if (lineTemplates.size > 4000) lineTemplates.clear();
      lineTemplates.set(key, t);
    }
    return t;
  }
  const spanTemplates = new Map();  // class -> empty <span>
  function styledSpan(c, s) {
    if (!spanTemplates.has(c)) spanTemplates.set(c, el('span', c));
    const e = spanTemplates.get(c).cloneNode(false);
    if (s && s.color) e.style.color = s.color;
    if (s && s.background) e.style.backgroundColor = s.background;
    return e;
  }

  // Appends segments to `parent`, wrapping case-insensitive matches of needle in <mark>.
  function appendSegments(parent, segs, needle) {
    const ranges = [];
    if (needle) {
      const plain = segs.map((s) => s.t).join('');
      const low = plain.toLowerCase();
      if (low.length === plain.length) {
        for (let i = low.indexOf(needle); i !== -1; i = low.indexOf(needle, i + needle.length)) {
          ranges.push([i, i + needle.length]);
        }
      }
    }
    let pos = 0, ri = 0;
    for (const seg of segs) {
      let box = parent;
      if (seg.c || seg.s) {
        box = styledSpan(seg.c, seg.s);
        parent.appendChild(box);
      }
      const t = seg.t, start = pos, end = pos + t.length;
      let cur = start;
      while (cur < end) {
        while (ri < ranges.length && ranges[ri][1] <= cur) ri++;
        const r = ranges[ri];
        if (!r || r[0] >= end) { box.append(t.slice(cur - start)); break; }
        if (r[0] > cur) { box.append(t.slice(cur - start, r[0] - start)); cur = r[0]; }
        const me = Math.min(r[1], end);
        box.appendChild(el('mark', null, t.slice(cur - start, me - start)));
        cur = me;
      }
      pos = end;
    }
  }

  function renderLine(line) {
    const kind = line.kind === 'error' || line.kind === 'event' ? line.kind : '';
    const div = lineTemplate(String(line.span ?? ''), kind, view.resource === null).cloneNode(true);
    div._seq = line.seq;
    const text = typeof line.text === 'string' ? line.text : String(line.text ?? '');
    if (!filter.needle && !NEEDS_CLEAN_RE.test(text)) {
      div.appendChild(document.createTextNode(text));
    } else {
      const clean = NEEDS_CLEAN_RE.test(text) ? stripCR(text) : text;
      appendSegments(div, clean.includes('\x1b') ? ansiSegments(clean) : [{ t: clean.replace(CTRL_RE, ''), c: '', s: null }], filter.needle);
    }
    return div;
  }

  function ingest(arr) {
    if (!Array.isArray(arr)) return;
    const n0 = view.pending.length;
    for (const l of arr) {
      if (!l || typeof l !== 'object') continue;
      if (typeof l.seq === 'number') {
        if (l.seq <= view.lastSeq) continue;
        view.lastSeq = l.seq;
      }
      view.lines.push(l);
      if (matches(l)) view.pending.push(l);
    }
    if (!view.follow) view.heldBack += view.pending.length - n0;
    if (view.lines.length > MEM_CAP * 1.2) view.lines.splice(0, view.lines.length - MEM_CAP);
    if (view.pending.length > FOLLOW_DOM_CAP) {
      // Paused, hidden tab, or more than frames can show: only the newest can be rendered.
      const n = view.pending.length - FOLLOW_DOM_CAP;
      view.pending.splice(0, n);
      view.skip += n;
    }
    schedule();
  }

  // `event: dropped` counts lines the session evicted before we read them; the backlog read
  // also counts the older lines beyond its limit.
  function addDropped(n, backlog) {
    n = Number(n) || 0;
    if (n <= 0) return;
    if (backlog) view.skipped += n; else view.dropped += n;
    const parts = [];
    if (view.dropped) parts.push(view.dropped + (view.dropped === 1 ? ' older line was dropped' : ' older lines were dropped') + ' (the session keeps a limited amount of log)');
    if (view.skipped) parts.push(view.skipped + ' older line' + (view.skipped === 1 ? ' was' : 's were') + ' not loaded (dropped, or older than the newest ' + backlogLimit() + ')');
    setText($('log-dropped-text'), parts.join('; ') + '.');
    $('log-dropped').hidden = false;
  }

  function setStreamState(t) { setText($('log-stream-state'), t); }

  function selectView(resource) {
    view.gen++;
    if (view.source) { view.source.close(); view.source = null; }
    const prev = view.resource;
    Object.assign(view, { resource, lines: [], lastSeq: 0, dropped: 0, skipped: 0, retry: 0 });
    resetLog();
    $('log-dropped').hidden = true;
    updateFollowButton();
    setText($('log-title'), resource === null ? 'All resources' : resource === '(Tiltfile)' ? 'Tiltfile' : resource);
    document.querySelector('[data-resource-all]').classList.toggle('selected', resource === null);
    document.querySelector('[data-view="(Tiltfile)"]').classList.toggle('selected', resource === '(Tiltfile)');
    for (const name of [prev, resource]) {
      if (name != null && rows.has(name)) dirtyRows.add(name);
    }
    const hash = resource === null ? '' : '#r=' + encodeURIComponent(resource);
    if (location.hash !== hash) history.replaceState(null, '', location.pathname + location.search + hash);
    loadBacklog(view.gen);
    schedule();
  }

  function viewQuery() {
    return view.resource === null ? '' : 'resource=' + encodeURIComponent(view.resource) + '&';
  }

  // The all-resources view shows only its newest few thousand lines anyway: read fewer.
  function backlogLimit() { return view.resource === null ? BACKLOG_ALL : BACKLOG_ONE; }

  // The newest backlogLimit() lines come from GET /api/logs (bounded), then the stream
  // continues after its last_seq. If that read fails, the stream's own backlog (since=0) is used.
  async function loadBacklog(gen) {
    setStreamState('loading…');
    try {
      const res = await fetch('/api/logs?' + viewQuery() + 'limit=' + backlogLimit());
      if (!res.ok) throw new Error(String(res.status));
      const d = await res.json();
      if (gen !== view.gen) return;
      addDropped(d.dropped, true);
      ingest(d.lines);
      if (typeof d.last_seq === 'number') view.lastSeq = Math.max(view.lastSeq, d.last_seq);
    } catch (_) {
      if (gen !== view.gen) return;
    }
    openLogStream(gen);
  }

  function openLogStream(gen) {
    if (gen !== view.gen) return;
    if (view.source) view.source.close();
    const es = new EventSource('/api/logs/stream?' + viewQuery() + 'since=' + view.lastSeq);
    view.source = es;
    es.addEventListener('open', () => { if (gen === view.gen) { view.retry = 0; setStreamState(''); } });
    es.addEventListener('lines', (ev) => { if (gen === view.gen) ingest(parseJSON(ev.data)); });
    es.addEventListener('dropped', (ev) => {
      const d = parseJSON(ev.data);
      if (gen === view.gen && d) addDropped(d.count);
    });
    es.addEventListener('error', () => {
      if (gen !== view.gen) return;
      setStreamState('log stream reconnecting…');
      // Reconnects carry Last-Event-ID; if the browser gave up, resume from lastSeq ourselves.
      if (es.readyState === EventSource.CLOSED) {
        const delay = Math.min(10000, 500 * 2 ** view.retry++);
        setTimeout(() => { if (gen === view.gen && view.source === es) openLogStream(gen); }, delay);
      }
    });
  }

  // #log holds .log-chunk elements of up to CHUNK lines each (content-visibility: auto):
  // the browser then lays out, paints and hit-tests tens of chunks, not thousands of lines.
  // Between chunks, a .log-gap button may stand for lines skipped while following.
  function domCount() {
    let n = 0;
    for (let c = logEl.firstElementChild; c; c = c.nextElementSibling) n += c.childElementCount;
    return n;
  }
  function newChunk() { return el('div', 'log-chunk'); }
  const firstLine = () => logEl.querySelector('.log-line');
  function lastLine() {
    for (let c = logEl.lastElementChild; c; c = c.previousElementSibling) if (c.lastElementChild) return c.lastElementChild;
    return null;
  }

  // Appends lines (oldest first) after the last line.
  function appendLines(lines) {
    let chunk = logEl.lastElementChild;
    let i = 0;
    while (i < lines.length) {
      if (!chunk || chunk.className !== 'log-chunk' || chunk.childElementCount >= CHUNK) {
        chunk = newChunk();
        logEl.appendChild(chunk);
      }
      const frag = document.createDocumentFragment();
      const end = Math.min(lines.length, i + CHUNK - chunk.childElementCount);
      for (; i < end; i++) frag.appendChild(renderLine(lines[i]));
      chunk.appendChild(frag);
    }
  }

  // Inserts lines (oldest first) before `before` (null: at the end), in new chunks.
  function insertLines(lines, before) {
    for (let i = 0; i < lines.length; i += CHUNK) {
      const chunk = newChunk();
      const end = Math.min(lines.length, i + CHUNK);
      for (let j = i; j < end; j++) chunk.appendChild(renderLine(lines[j]));
      logEl.insertBefore(chunk, before);
    }
  }

  // Removes whole chunks (and gaps) from the top while at least `cap` lines remain; the
  // last child always stays, so #log is never emptied here.
  function trimTop(cap) {
    let n = domCount();
    for (let c = logEl.firstElementChild; c && c.nextElementSibling; c = logEl.firstElementChild) {
      const k = c.childElementCount;
      if (k && n - k < cap) break;
      n -= k;
      c.remove();
    }
  }

  // Setting scrollTop past the end clamps to the bottom; nothing is read back.
  function scrollToBottom() { logEl.scrollTop = 1e9; }

  // Re-render #log from memory, following: it is emptied on the next frame, then refilled
  // with the lines that arrive and, backwards from the newest, with those already in `lines`.
  function resetLog() {
    view.clear = true;
    view.backfill = true;
    view.pending = [];
    view.skip = 0;
    view.heldBack = 0;
    view.follow = true;
    view.autoTop = 0;  // #log restarts at scrollTop 0: that is no upward scroll
    updateFollowButton();
    schedule();
  }

  // Index in view.lines of the first line with seq >= `seq` (lines are in seq order).
  function seqIndex(seq) {
    let lo = 0, hi = view.lines.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (view.lines[mid].seq < seq) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  // Prepends up to n matching lines older than the first one in #log. Returns whether it did.
  function backfill(n) {
    const room = Math.min(n, (view.follow ? FOLLOW_DOM_CAP : PAUSED_DOM_CAP) - domCount());
    const first = firstLine();
    let i = first ? seqIndex(first._seq) : view.lines.length;
    if (room <= 0 || i <= 0) { view.backfill = false; return false; }
    const sel = [];
    for (i--; i >= 0 && sel.length < room; i--) if (matches(view.lines[i])) sel.push(view.lines[i]);
    if (i < 0) view.backfill = false;
    if (!sel.length) return false;
    // Scroll anchoring keeps a paused reader's place, except at scrollTop 0: do it by hand.
    const h0 = !view.follow && logEl.scrollTop === 0 ? logEl.scrollHeight : -1;
    insertLines(sel.reverse(), logEl.firstElementChild);
    if (h0 >= 0) logEl.scrollTop = logEl.scrollHeight - h0;
    return true;
  }

  // A gap stands for `n` matching lines with seq in (after, before) left out of #log.
  function setGap(gap, after, before, n) {
    Object.assign(gap, { _after: after, _before: before, type: 'button',
      textContent: '⋯ ' + n + ' line' + (n === 1 ? '' : 's') + ' skipped here (they came faster than they could be drawn): click to show' });
    return gap;
  }

  // Restores a gap's lines from memory (the newest that fit, up to PAUSED_DOM_CAP), paused.
  function expandGap(gap) {
    setFollow(false);
    const lo = seqIndex(gap._after + 1);
    let i = seqIndex(gap._before) - 1;
    const room = PAUSED_DOM_CAP - domCount();
    const sel = [];
    for (; i >= lo && sel.length < room; i--) if (matches(view.lines[i])) sel.push(view.lines[i]);
    insertLines(sel.reverse(), gap.nextSibling);
    let left = 0;
    for (; i >= lo; i--) if (matches(view.lines[i])) left++;
    if (!left) gap.remove();
    else if (sel.length) setGap(gap, gap._after, sel[0].seq, left);
    else toast('The log view is full: filter it to see these lines.');
  }

  function flushLogs() {
    const t0 = performance.now();
    let changed = false;
    if (view.clear) { view.clear = false; logEl.replaceChildren(); changed = true; }
    if (!view.follow) updateFollowButton();  // paused: new lines are only counted
    else if (view.pending.length) {
      // Render the newest lines that fit in the frame's budget; a gap stands for the rest.
      let batch = view.pending;
      view.pending = [];
      const fit = Math.max(MIN_FIT, Math.min(MAX_FIT, Math.floor(FRAME_BUDGET_MS / view.msPerLine)));
      let skipped = view.skip;
      view.skip = 0;
      if (batch.length > fit) { skipped += batch.length - fit; batch = batch.slice(-fit); }
      const last = lastLine();
      if (skipped && last) logEl.appendChild(setGap(el('button', 'log-gap'), last._seq, batch[0].seq, skipped));
      else if (skipped) view.backfill = true;
      const t1 = performance.now();
      appendLines(batch);
      trimTop(FOLLOW_DOM_CAP);
      // Setting scrollTop lays the page out now, so the measured cost includes layout;
      // paint comes after this task: count half as much again for it.
      scrollToBottom();
      if (batch.length >= 20) {
        const cost = Math.max(0.002, 1.5 * (performance.now() - t1) / batch.length);
        view.msPerLine = 0.8 * view.msPerLine + 0.2 * cost;
      }
      changed = true;
    }
    if (view.backfill) {
      const left = FRAME_BUDGET_MS - (performance.now() - t0);
      const n = Math.min(BACKFILL_LINES, Math.floor(left / view.msPerLine));
      if (n >= 20 && backfill(n)) changed = true;
      if (view.backfill) schedule();
    }
    if (changed && view.follow) scrollToBottom();
  }

  function setFollow(on) {
    if (view.follow === on) return;
    view.follow = on;
    if (on) {
      view.heldBack = 0;
      trimTop(FOLLOW_DOM_CAP);
      scrollToBottom();
    } else {
      view.backfill = true;  // scrollback: restore older lines from memory while paused
    }
    schedule();
    updateFollowButton();
  }

  function updateFollowButton() {
    const b = $('log-follow');
    b.hidden = view.follow;
    setText(b, view.heldBack ? '↓ ' + view.heldBack + ' new lines — follow' : '↓ Follow new lines');
  }

  function isAtBottom() {
    return logEl.scrollHeight - logEl.scrollTop - logEl.clientHeight < 24;
  }

  // ---------------------------------------------------------------- 7. Wiring

  let frameQueued = false;
  function schedule() {
    if (!frameQueued) { frameQueued = true; requestAnimationFrame(frame); }
  }
  function frame() {
    frameQueued = false;
    renderResources();
    if (headerDirty) { headerDirty = false; renderHeader(); }
    flushLogs();
  }

  // Row actions (one delegated listener for the whole list).
  $('resource-list').addEventListener('click', (ev) => {
    const row = ev.target.closest('[data-resource]');
    if (!row || ev.target.closest('a')) return;
    const name = row.getAttribute('data-resource');
    const btn = ev.target.closest('[data-action]');
    if (!btn) { if (view.resource !== name) selectView(name); return; }
    const r = state.resources.get(name);
    const action = btn.getAttribute('data-action');
    let path;
    if (action === 'trigger') path = 'trigger';
    else if (action === 'toggle-enable') path = r && r.enabled === false ? 'enable' : 'disable';
    else return;
    btn.classList.add('busy');
    post('/api/resources/' + encodeURIComponent(name) + '/' + path)
      .catch((e) => toast(path + ' ' + name + ': ' + e.message))
      .finally(() => setTimeout(() => btn.classList.remove('busy'), 300));
  });

  document.querySelector('[data-resource-all]').addEventListener('click', () => { if (view.resource !== null) selectView(null); });
  document.querySelector('[data-view="(Tiltfile)"]').addEventListener('click', () => {
    if (view.resource !== '(Tiltfile)') selectView('(Tiltfile)');
  });

  let filterTimer = 0;
  const filterInput = $('log-filter');
  function applyFilter() {
    filter.needle = filterInput.value.toLowerCase();
    filter.errorsOnly = $('log-errors-only').checked;
    view.follow = true;
    resetLog();
  }
  filterInput.addEventListener('input', () => { clearTimeout(filterTimer); filterTimer = setTimeout(applyFilter, 120); });
  filterInput.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { filterInput.value = ''; applyFilter(); filterInput.blur(); }
  });
  $('log-errors-only').addEventListener('change', applyFilter);
  $('log-clear').addEventListener('click', () => { view.lines = []; resetLog(); });
  $('log-dropped-close').addEventListener('click', () => { $('log-dropped').hidden = true; });
  $('log-follow').addEventListener('click', () => setFollow(true));

  // Auto-scroll: pause on any upward user scroll, resume when back at the bottom. (Scroll
  // events come before the frame's DOM changes, so reading layout here costs little.)
  logEl.addEventListener('scroll', () => {
    if (isAtBottom()) { view.autoTop = logEl.scrollTop; setFollow(true); }
    else if (view.follow && logEl.scrollTop < view.autoTop - 4) setFollow(false);
  });
  logEl.addEventListener('click', (ev) => {
    const gap = ev.target.closest('.log-gap');
    if (gap) expandGap(gap);
  });
  logEl.addEventListener('wheel', (ev) => {
    if (ev.deltaY < 0 && logEl.scrollHeight > logEl.clientHeight) setFollow(false);
  }, { passive: true });

  document.addEventListener('keydown', (ev) => {
    const t = ev.target;
    if (ev.key === '/' && !(t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement)) {
      ev.preventDefault();
      filterInput.focus();
    }
  });

  // A debugging aid (e.g. from the browser console): read-only handles on the state.
  window.tiltrs = { state, view, filter };

  const m = /^#r=(.+)$/.exec(location.hash);
  let initial = null;
  if (m) { try { initial = decodeURIComponent(m[1]); } catch (_) { initial = null; } }
  setConnected(false);
  connectEvents();
  selectView(initial);
})();
