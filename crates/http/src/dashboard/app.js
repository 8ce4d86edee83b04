// The aps dashboard: plain JavaScript, no build step, no outside resources. It reads
// and acts through /api with the token the user gives (kept in sessionStorage), and
// polls every 2 s while the tab is visible. Every piece of data goes into the page as
// text (textContent / text nodes), never as markup.
'use strict';

(function () {
  const POLL_MS = 2000;
  const TOKEN_KEY = 'aps.token';
  const STRIP_LEN = 20;
  const STRIP_CONCURRENCY = 4;
  const RUNS_PAGE = 20;
  const ROLE_RANK = { read: 0, operate: 1, admin: 2 };

  const $ = (sel) => document.querySelector(sel);

  // ---- small DOM helpers ----------------------------------------------------------

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return node;
  }

  function setText(node, text) {
    const t = text === null || text === undefined ? '' : String(text);
    if (node.textContent !== t) node.textContent = t;
  }

  function replaceChildren(node, ...children) {
    node.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
  }

  // ---- time -----------------------------------------------------------------------

  const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const thisYearFmt = new Intl.DateTimeFormat(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const timeFmt = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });

  /** A time in the browser's zone: the time alone when it is today. */
  function localTime(iso) {
    if (!iso) return '';
    const t = new Date(iso);
    if (Number.isNaN(t.getTime())) return String(iso);
    const now = new Date();
    if (t.toDateString() === now.toDateString()) return timeFmt.format(t);
    return t.getFullYear() === now.getFullYear() ? thisYearFmt.format(t) : dateTimeFmt.format(t);
  }

  function fullTime(iso) {
    if (!iso) return '';
    const t = new Date(iso);
    return Number.isNaN(t.getTime()) ? String(iso) : `${dateTimeFmt.format(t)} (${iso})`;
  }

  function span(ms) {
    const s = Math.abs(ms) / 1000;
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} d`;
  }

  /** "in 3 s", "5 min ago", "now". */
  function relative(iso) {
    if (!iso) return '';
    const t = new Date(iso).getTime();
    if (Number.isNaN(t)) return '';
    const d = t - Date.now();
    if (Math.abs(d) < 500) return 'now';
    return d > 0 ? `in ${span(d)}` : `${span(d)} ago`;
  }

  function took(start, end) {
    if (!start || !end) return '';
    const ms = new Date(end).getTime() - new Date(start).getTime();
    if (Number.isNaN(ms) || ms < 0) return '';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
    const m = Math.floor(ms / 60000);
    return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  // ---- the API --------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, method) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(path, { method: method || 'GET', headers, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'network', `cannot reach the scheduler (${e.message})`);
    }
    const text = await res.text();
    let body = null;
    if (text) {
      try { body = JSON.parse(text); } catch (_) { body = null; }
    }
    if (!res.ok) {
      const message = body && body.message ? body.message : `${res.status} ${res.statusText || 'error'}`;
      throw new ApiError(res.status, body && body.code ? body.code : 'http', message);
    }
    return body;
  }

  const enc = encodeURIComponent;

  // ---- state ----------------------------------------------------------------------

  const state = {
    status: null,
    signedOut: false,
    route: { name: 'jobs' },
    jobs: [],
    jobsById: new Map(),
    nodesAvailable: true,
    busy: new Set(), // job ids with an action in flight
    runsLimit: RUNS_PAGE,
    errors: new Map(), // source -> message
    lastOk: null,
  };

  function canOperate() {
    return !!state.status && (ROLE_RANK[state.status.role] || 0) >= ROLE_RANK.operate;
  }

  // ---- errors and notices ---------------------------------------------------------

  function showError(source, message) {
    state.errors.set(source, message);
    renderBanner();
  }

  function clearError(source) {
    if (state.errors.delete(source)) renderBanner();
  }

  function renderBanner() {
    const banner = $('#banner');
    if (state.errors.size === 0) {
      banner.hidden = true;
      banner.replaceChildren();
      return;
    }
    const items = [];
    for (const [source, message] of state.errors) {
      items.push(el('div', { class: 'banner-item', 'data-testid': `error-${source}` },
        el('span', { class: 'banner-text', text: message }),
        el('button', {
          type: 'button', class: 'banner-close', 'aria-label': 'dismiss', 'data-testid': `dismiss-${source}`,
          onclick: () => clearError(source),
        }, '×')));
    }
    banner.replaceChildren(...items);
    banner.hidden = false;
  }

  let toastTimer = null;
  function toast(message, attrs) {
    const t = $('#toast');
    t.textContent = message;
    for (const a of [...t.attributes]) if (a.name.startsWith('data-run')) t.removeAttribute(a.name);
    for (const [k, v] of Object.entries(attrs || {})) t.setAttribute(k, v);
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  // ---- sign in --------------------------------------------------------------------

  function showLogin(message) {
    state.signedOut = true;
    clearTimeout(pollTimer);
    $('#login').hidden = false;
    $('#jobs-view').hidden = true;
    $('#job-view').hidden = true;
    const err = $('#login-error');
    const hadToken = !!sessionStorage.getItem(TOKEN_KEY);
    err.hidden = !hadToken;
    err.textContent = hadToken ? message : '';
    setText($('#caller'), '');
    $('#signout').hidden = !hadToken;
    setLive('off');
    $('#token').focus();
  }

  $('#login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('#token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('#token').value = '';
    state.signedOut = false;
    $('#login').hidden = true;
    refresh();
  });

  $('#signout').addEventListener('click', (ev) => {
    ev.preventDefault();
    sessionStorage.removeItem(TOKEN_KEY);
    state.status = null;
    state.errors.clear();
    renderBanner();
    state.signedOut = false;
    refresh();
  });

  // ---- header ---------------------------------------------------------------------

  function renderStatus() {
    const s = state.status;
    const badge = $('#state');
    badge.hidden = false;
    setText(badge, s.state);
    badge.className = `badge state-${s.state}`;
    setText($('#scheduler-meta'), `${s.node || s.scheduler_id} · ${s.timezone} · v${s.version}`);
    setText($('#caller'), `${s.caller} · ${s.role}`);
    $('#caller').title = s.auth === 'tokens' ? 'signed in with a token' : 'no tokens configured: loopback clients only';
    $('#signout').hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  function setLive(mode) {
    const live = $('#live');
    live.className = `live live-${mode}`;
    live.title = { ok: 'live: updates every 2 s', paused: 'paused while the tab is hidden', error: 'the last update failed', off: '' }[mode] || '';
  }

  // ---- buttons --------------------------------------------------------------------

  function actionButtons(job, prefix) {
    if (!canOperate()) return [];
    const busy = state.busy.has(job.id);
    const id = job.id;
    const buttons = [];
    if (job.paused) {
      buttons.push(el('button', {
        type: 'button', class: 'btn', 'data-testid': `${prefix}resume-${id}`, disabled: busy,
        title: `resume ${id}`, onclick: () => act(id, 'resume'),
      }, 'Resume'));
    } else {
      buttons.push(el('button', {
        type: 'button', class: 'btn', 'data-testid': `${prefix}pause-${id}`, disabled: busy,
        title: `pause ${id}`, onclick: () => act(id, 'pause'),
      }, 'Pause'));
    }
    buttons.push(el('button', {
      type: 'button', class: 'btn btn-primary', 'data-testid': `${prefix}run-${id}`, disabled: busy,
      title: `run ${id} once now`, onclick: () => act(id, 'run'),
    }, 'Run now'));
    return buttons;
  }

  async function act(id, verb) {
    state.busy.add(id);
    rerenderActions(id);
    try {
      const body = await api(`/api/jobs/${enc(id)}/${verb}`, 'POST');
      clearError('action');
      if (verb === 'run') {
        const runId = body && body.run_id;
        toast(runId ? `Started a run of ${id} (run ${runId})` : `Started a run of ${id}`,
          runId ? { 'data-run-id': runId, 'data-run-job': id } : { 'data-run-job': id });
        setTimeout(refresh, 1000);
      } else {
        toast(`${verb === 'pause' ? 'Paused' : 'Resumed'} ${id}`);
        if (body && body.id) {
          // Show the answer at once; the refresh below confirms it.
          const old = state.jobsById.get(id);
          if (old) Object.assign(old, body);
        }
      }
    } catch (e) {
      if (e.status === 401) { showLogin(e.message); return; }
      showError('action', `${verb} ${id}: ${e.message}`);
    } finally {
      state.busy.delete(id);
    }
    rerenderActions(id);
    refresh();
  }

  function rerenderActions(id) {
    const job = state.jobsById.get(id);
    if (job) {
      const row = rows.get(id);
      if (row) fillRow(row, job);
    }
    if (state.route.name === 'job' && state.route.id === id && state.detail) {
      renderDetailHead(state.detail);
    }
  }

  // ---- outcome badges and strips ----------------------------------------------------

  function outcomeBadge(outcome, testid) {
    if (!outcome) return el('span', { class: 'badge outcome-none', 'data-testid': testid }, 'never run');
    return el('span', { class: `badge outcome-${outcome}`, 'data-testid': testid, 'data-outcome': outcome }, outcome);
  }

  // job id -> { key, runs, loading }
  const strips = new Map();
  const stripQueue = [];
  let stripsInFlight = 0;
  const visible = new Set();

  function stripKey(job) {
    return job.last_run_at ? `${job.last_run_at}|${job.last_outcome}` : '';
  }

  function wantStrips() {
    if (!state.status || !state.status.history) return;
    for (const id of visible) {
      const job = state.jobsById.get(id);
      if (!job) continue;
      const key = stripKey(job);
      const s = strips.get(id);
      if (!key) {
        if (!s || s.key !== key) { strips.set(id, { key, runs: [] }); renderStrip(id); }
        continue;
      }
      if (s && (s.key === key || s.loading)) continue;
      if (!stripQueue.includes(id)) stripQueue.push(id);
    }
    pumpStrips();
  }

  function pumpStrips() {
    while (stripsInFlight < STRIP_CONCURRENCY && stripQueue.length) {
      const id = stripQueue.shift();
      const job = state.jobsById.get(id);
      if (!job || !visible.has(id)) continue;
      const key = stripKey(job);
      const s = strips.get(id) || { key: null, runs: [] };
      s.loading = true;
      strips.set(id, s);
      stripsInFlight++;
      api(`/api/history?job=${enc(id)}&limit=${STRIP_LEN}`)
        .then((runs) => {
          s.runs = runs;
          s.key = key;
          clearError('strips');
          renderStrip(id);
        })
        .catch((e) => {
          if (e.status === 401) showLogin(e.message);
          else showError('strips', `recent runs of ${id}: ${e.message}`);
        })
        .finally(() => {
          s.loading = false;
          stripsInFlight--;
          pumpStrips();
        });
    }
  }

  function renderStrip(id) {
    const row = rows.get(id);
    const s = strips.get(id);
    if (!row || !s) return;
    const runs = (s.runs || []).slice(0, STRIP_LEN).reverse(); // oldest first
    const cells = runs.map((r) => el('span', {
      class: `sq outcome-${r.outcome}`,
      title: `${r.outcome} · ${localTime(r.scheduled_at)}`,
      'data-outcome': r.outcome,
    }));
    row.strip.setAttribute('data-count', String(runs.length));
    row.strip.replaceChildren(...cells);
    if (!runs.length) row.strip.append(el('span', { class: 'muted small' }, '—'));
  }

  const observer = 'IntersectionObserver' in window
    ? new IntersectionObserver((entries) => {
      for (const e of entries) {
        const id = e.target.dataset.jobId;
        if (e.isIntersecting) visible.add(id); else visible.delete(id);
      }
      wantStrips();
    }, { rootMargin: '200px 0px' })
    : null;

  // ---- the jobs view --------------------------------------------------------------

  const rows = new Map(); // job id -> row parts

  function makeRow(id) {
    const tr = el('tr', { 'data-testid': `job-row-${id}` });
    tr.dataset.jobId = id;
    const link = el('a', { href: `#/jobs/${enc(id)}`, class: 'job-id', 'data-testid': `job-link-${id}` }, id);
    const name = el('div', { class: 'muted small job-name' });
    const action = el('div', { class: 'muted small action' });
    const trigger = el('td', { class: 'col-trigger', 'data-label': 'Trigger' });
    const next = el('td', { class: 'col-next', 'data-label': 'Next run' });
    const last = el('td', { class: 'col-last', 'data-label': 'Last' });
    const strip = el('div', { class: 'strip', 'data-testid': `strip-${id}` });
    const actions = el('td', { class: 'col-actions' });
    tr.append(
      el('td', { class: 'col-job' }, link, name, action),
      trigger, next, last,
      el('td', { class: 'col-strip', 'data-label': 'Recent runs' }, strip),
      actions,
    );
    if (observer) observer.observe(tr); else visible.add(id);
    return { tr, name, action, trigger, next, last, strip, actions, actionsKey: null };
  }

  function fillRow(r, job) {
    r.tr.classList.toggle('is-paused', job.paused);
    r.tr.dataset.paused = String(job.paused);
    setText(r.name, job.name && job.name !== job.id ? job.name : '');
    setText(r.action, job.action || '');
    setText(r.trigger, job.trigger);

    const nextKey = `${job.paused}|${job.next_run_time}|${job.paused_reason}`;
    if (r.nextKey !== nextKey) {
      r.nextKey = nextKey;
      if (job.paused) {
        // Paused by the job's policy: the reason shows on hover.
        const attrs = { class: 'badge badge-paused', 'data-testid': `paused-${job.id}` };
        if (job.paused_reason) attrs.title = job.paused_reason;
        replaceChildren(r.next, el('span', attrs, job.paused_reason ? 'paused by policy' : 'paused'));
      } else if (job.next_run_time) {
        r.nextTime = el('span', { class: 'when', title: fullTime(job.next_run_time) }, localTime(job.next_run_time));
        r.nextRel = el('span', { class: 'muted small rel' });
        replaceChildren(r.next, r.nextTime, ' ', r.nextRel);
      } else {
        replaceChildren(r.next, el('span', { class: 'muted' }, 'none'));
      }
    }
    if (!job.paused && job.next_run_time && r.nextRel) setText(r.nextRel, relative(job.next_run_time));

    const lastKey = `${job.last_outcome}|${job.last_run_at}`;
    if (r.lastKey !== lastKey) {
      r.lastKey = lastKey;
      r.lastRel = el('span', { class: 'muted small rel', title: fullTime(job.last_run_at) });
      replaceChildren(r.last, outcomeBadge(job.last_outcome, `outcome-${job.id}`), ' ', job.last_run_at ? r.lastRel : null);
    }
    if (job.last_run_at) setText(r.lastRel, relative(job.last_run_at));

    const actionsKey = `${canOperate()}|${job.paused}|${state.busy.has(job.id)}`;
    if (r.actionsKey !== actionsKey) {
      r.actionsKey = actionsKey;
      replaceChildren(r.actions, el('div', { class: 'actions' }, ...actionButtons(job, '')));
    }
  }

  function applyFilter() {
    const q = $('#filter').value.trim().toLowerCase();
    let shown = 0;
    for (const job of state.jobs) {
      const r = rows.get(job.id);
      if (!r) continue;
      const hay = `${job.id} ${job.name} ${job.trigger} ${job.action || ''}`.toLowerCase();
      const hide = q !== '' && !hay.includes(q);
      r.tr.hidden = hide;
      if (!hide) shown++;
    }
    setText($('#job-count'), q ? `${shown} of ${state.jobs.length}` : String(state.jobs.length));
    $('#jobs-empty').hidden = shown !== 0;
    setText($('#jobs-empty'), state.jobs.length ? 'No job matches the filter.' : 'No jobs.');
  }
  $('#filter').addEventListener('input', applyFilter);

  function renderJobs() {
    const body = $('#jobs-body');
    const seen = new Set();
    let i = 0;
    for (const job of state.jobs) {
      let r = rows.get(job.id);
      if (!r) { r = makeRow(job.id); rows.set(job.id, r); }
      fillRow(r, job);
      if (body.children[i] !== r.tr) body.insertBefore(r.tr, body.children[i] || null);
      seen.add(job.id);
      i++;
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) {
        if (observer) observer.unobserve(r.tr);
        r.tr.remove();
        rows.delete(id);
        strips.delete(id);
        visible.delete(id);
      }
    }
    applyFilter();
    wantStrips();
  }

  function renderNodes(nodes) {
    const section = $('#nodes');
    if (!nodes || nodes.length === 0) { section.hidden = true; return; }
    section.hidden = false;
    $('#nodes-body').replaceChildren(...nodes.map((n) => el('tr', { 'data-testid': `node-row-${n.node}` },
      el('td', { 'data-label': 'Node' }, n.node),
      el('td', { 'data-label': 'Host' }, n.host),
      el('td', { 'data-label': 'PID' }, String(n.pid)),
      el('td', { 'data-label': 'Started', title: fullTime(n.started_at) }, localTime(n.started_at)),
      el('td', { 'data-label': 'Heartbeat', title: fullTime(n.heartbeat_at) }, relative(n.heartbeat_at)),
      el('td', { 'data-label': 'Running' }, String(n.running)),
      el('td', { 'data-label': 'State' }, el('span', { class: `badge node-${n.state}` }, n.state)))));
  }

  async function refreshJobs() {
    const wantNodes = state.status.nodes && state.nodesAvailable;
    const [jobs, nodes] = await Promise.all([
      api('/api/jobs'),
      wantNodes
        ? api('/api/nodes').catch((e) => {
          if (e.status === 404) { state.nodesAvailable = false; return []; }
          throw e;
        })
        : Promise.resolve([]),
    ]);
    state.jobs = jobs;
    state.jobsById = new Map(jobs.map((j) => [j.id, j]));
    renderJobs();
    renderNodes(nodes);
  }

  // ---- the job view ---------------------------------------------------------------

  const runRows = new Map(); // run id -> parts

  function renderDetailHead(job) {
    setText($('#job-title'), job.id);
    replaceChildren($('#job-badges'),
      job.paused ? el('span', { class: 'badge badge-paused', 'data-testid': 'job-paused' }, 'paused') : null);
    setText($('#job-subtitle'), [job.name !== job.id ? job.name : '', job.action || ''].filter(Boolean).join(' · '));
    replaceChildren($('#job-actions'), ...actionButtons(job, 'detail-'));
  }

  function renderDetail(job, fireTimes) {
    state.detail = job;
    document.title = `aps · ${job.id}`;
    renderDetailHead(job);
    const grace = job.misfire_grace_time === null || job.misfire_grace_time === undefined
      ? 'however late' : `${job.misfire_grace_time} s`;
    const opts = [
      ['Trigger', job.trigger],
      ['Action', job.action || '—'],
      ['Next run', job.paused ? (job.paused_reason || 'paused') : job.next_run_time ? `${localTime(job.next_run_time)} (${relative(job.next_run_time)})` : 'none'],
      ['Last run', job.last_run_at ? `${job.last_outcome} · ${localTime(job.last_run_at)} (${relative(job.last_run_at)})` : 'never'],
      ['Executor', job.executor],
      ['Misfire grace', grace],
      ['Coalesce', job.coalesce ? 'yes' : 'no'],
      ['Max instances', String(job.max_instances)],
      ['Recover', job.recover ? 'yes' : 'no'],
      ['Policy', policyText(job.policy)],
      ['Failures in a row', String(job.failure_streak || 0)],
      ['Origin', job.origin || '—'],
      ['Calendar', job.calendar ? `${job.calendar} (${job.calendar_action}): ${job.calendar_rules || ''}` : 'none'],
    ];
    const dl = $('#job-options');
    dl.replaceChildren(...opts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-testid': `opt-${k.toLowerCase().replace(/ /g, '-')}` }, v)]));

    const next = $('#job-next');
    if (fireTimes.length === 0) {
      next.replaceChildren(el('li', { class: 'muted' }, job.paused ? 'Paused: no fire times.' : 'No fire time left.'));
    } else {
      next.replaceChildren(...fireTimes.map((t) => el('li', { title: t },
        el('span', { class: 'when' }, localTime(t)), ' ', el('span', { class: 'muted small' }, relative(t)))));
    }

    const def = job.definition === null || job.definition === undefined ? null : JSON.stringify(job.definition, null, 2);
    $('#job-definition-box').hidden = def === null;
    setText($('#job-definition'), def || '');
  }

  // A job's run policy in one line: its retries and what a fire time does at max_instances.
  function policyText(policy) {
    if (!policy) return 'default';
    const parts = [];
    const retry = policy.retry;
    if (retry) {
      let text = `retry: ${retry.attempts} attempts, ${retry.delay} s apart`;
      if (retry.backoff && retry.backoff !== 1) text += `, ×${retry.backoff}`;
      if (retry.max_delay) text += `, at most ${retry.max_delay} s`;
      parts.push(text);
    }
    if (policy.overlap) parts.push(`overlap: ${policy.overlap}`);
    return parts.length ? parts.join(' · ') : JSON.stringify(policy);
  }

  function makeRunRow(r) {
    const parts = {};
    parts.outcome = el('span', { class: 'c-outcome' });
    parts.scheduled = el('span', { class: 'c-scheduled', 'data-label': 'Scheduled' });
    parts.started = el('span', { class: 'c-started', 'data-label': 'Started' });
    parts.took = el('span', { class: 'c-took', 'data-label': 'Took' });
    parts.exit = el('span', { class: 'c-exit', 'data-label': 'Exit' });
    parts.message = el('span', { class: 'c-message', 'data-testid': `run-message-${r.run_id}` });
    parts.output = el('pre', { class: 'output', 'data-testid': `run-output-${r.run_id}` });
    parts.meta = el('p', { class: 'muted small run-meta' });
    parts.root = el('details', { class: 'run', 'data-testid': `run-row-${r.run_id}` },
      el('summary', { 'data-testid': `run-summary-${r.run_id}` },
        parts.outcome, parts.scheduled, parts.started, parts.took, parts.exit, parts.message),
      parts.meta, parts.output);
    parts.root.dataset.runId = r.run_id;
    return parts;
  }

  function fillRunRow(p, r) {
    p.root.dataset.outcome = r.outcome;
    const attempt = r.attempt || 1;
    const key = `${r.outcome}|${attempt}|${!!r.backfill}`;
    if (p.outcomeKey !== key) {
      p.outcomeKey = key;
      // A retry shows which attempt it is; a run a backfill started says so.
      replaceChildren(p.outcome, outcomeBadge(r.outcome, `run-outcome-${r.run_id}`),
        attempt > 1 ? el('span', { class: 'run-mark', title: `attempt ${attempt} at this fire time`, 'data-testid': `run-attempt-${r.run_id}` }, `#${attempt}`) : null,
        r.backfill ? el('span', { class: 'run-mark', title: 'started by a backfill', 'data-testid': `run-backfill-${r.run_id}` }, 'backfill') : null);
    }
    setText(p.scheduled, localTime(r.scheduled_at));
    p.scheduled.title = fullTime(r.scheduled_at);
    setText(p.started, r.started_at ? localTime(r.started_at) : '—');
    p.started.title = fullTime(r.started_at);
    setText(p.took, r.outcome === 'running' ? `${took(r.started_at, new Date().toISOString())}…` : took(r.started_at, r.finished_at));
    const exit = r.http_status !== null && r.http_status !== undefined ? `HTTP ${r.http_status}`
      : r.exit_code !== null && r.exit_code !== undefined ? `exit ${r.exit_code}` : '';
    setText(p.exit, exit);
    // A run waiting to start (a retry's delay): when it is due.
    const waiting = r.due_at && !r.started_at ? `due ${localTime(r.due_at)}` : '';
    setText(p.message, r.message || waiting);
    setText(p.meta, `run ${r.run_id} · node ${r.node}${r.finished_at ? ` · finished ${fullTime(r.finished_at)}` : ''}`);
    setText(p.output, r.output ? r.output : '(no output)');
    p.output.classList.toggle('muted', !r.output);
  }

  function renderRuns(runs) {
    const box = $('#job-runs');
    const seen = new Set();
    let i = 0;
    for (const r of runs) {
      let p = runRows.get(r.run_id);
      if (!p) { p = makeRunRow(r); runRows.set(r.run_id, p); }
      fillRunRow(p, r);
      if (box.children[i] !== p.root) box.insertBefore(p.root, box.children[i] || null);
      seen.add(r.run_id);
      i++;
    }
    for (const [id, p] of runRows) {
      if (!seen.has(id)) { p.root.remove(); runRows.delete(id); }
    }
    const empty = $('#runs-empty');
    empty.hidden = runs.length !== 0;
    setText(empty, 'No runs yet.');
    $('#runs-more').hidden = runs.length < state.runsLimit || state.runsLimit >= 1000;
  }

  $('#runs-more').addEventListener('click', () => {
    state.runsLimit = Math.min(1000, state.runsLimit + 50);
    refresh();
  });

  async function refreshJob(id) {
    const history = state.status.history;
    const [job, next, runs] = await Promise.all([
      api(`/api/jobs/${enc(id)}`),
      api(`/api/jobs/${enc(id)}/next?count=5`),
      history ? api(`/api/history?job=${enc(id)}&limit=${state.runsLimit}`) : Promise.resolve(null),
    ]);
    if (state.route.name !== 'job' || state.route.id !== id) return;
    renderDetail(job, next.fire_times || []);
    if (runs) {
      renderRuns(runs);
    } else {
      renderRuns([]);
      setText($('#runs-empty'), 'This store keeps no run history.');
    }
  }

  // ---- routing --------------------------------------------------------------------

  function parseRoute() {
    const m = /^#\/jobs\/(.+)$/.exec(location.hash);
    if (m) {
      try { return { name: 'job', id: decodeURIComponent(m[1]) }; } catch (_) { /* fall through */ }
    }
    return { name: 'jobs' };
  }

  function showRoute() {
    const route = parseRoute();
    const changed = route.name !== state.route.name || route.id !== state.route.id;
    state.route = route;
    if (changed) {
      clearError('poll');
      if (route.name === 'job') {
        state.detail = null;
        state.runsLimit = RUNS_PAGE;
        runRows.clear();
        $('#job-runs').replaceChildren();
        $('#job-options').replaceChildren();
        $('#job-next').replaceChildren();
        $('#job-actions').replaceChildren();
        $('#job-badges').replaceChildren();
        setText($('#job-subtitle'), '');
        setText($('#job-definition'), '');
        setText($('#job-title'), route.id);
        $('#runs-empty').hidden = true;
        $('#runs-more').hidden = true;
        window.scrollTo(0, 0);
      }
    }
    document.title = route.name === 'job' ? `aps · ${route.id}` : 'aps · jobs';
    if (state.signedOut) return;
    $('#jobs-view').hidden = route.name !== 'jobs' || !state.status;
    $('#job-view').hidden = route.name !== 'job' || !state.status;
  }

  window.addEventListener('hashchange', () => { showRoute(); refresh(); });

  // ---- polling --------------------------------------------------------------------

  let pollTimer = null;
  let refreshing = false;
  let again = false;

  function schedule() {
    clearTimeout(pollTimer);
    if (document.hidden || state.signedOut) return;
    pollTimer = setTimeout(refresh, POLL_MS);
  }

  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    clearTimeout(pollTimer);
    const route = state.route;
    try {
      state.status = await api('/api/status');
      state.signedOut = false;
      $('#login').hidden = true;
      renderStatus();
      showRoute();
      if (route.name === 'job') await refreshJob(route.id);
      else await refreshJobs();
      clearError('poll');
      state.lastOk = new Date();
      setText($('#updated'), `updated ${timeFmt.format(state.lastOk)}`);
      setLive('ok');
    } catch (e) {
      if (e.status === 401) {
        showLogin(e.message);
      } else {
        showError('poll', e.message);
        setLive('error');
      }
    } finally {
      refreshing = false;
      if (again) { again = false; refresh(); } else schedule();
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(pollTimer);
      if (!state.signedOut) setLive('paused');
    } else if (!state.signedOut) {
      refresh();
    }
  });

  showRoute();
  refresh();
}());
