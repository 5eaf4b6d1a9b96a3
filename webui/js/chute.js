// A chute's page: its usage against its limits, its resource policy, its
// logs, its network rules and its history.

import {APIError, chutePath, followLogs, getJSON, request} from './api.js';
import {actionButtons, ownerName, pageLink} from './actions.js';
import {changePanel, changeSummary, followChange, stepList} from './changes.js';
import {Chart} from './charts.js';
import {announce, h} from './dom.js';
import {bitsPerSecond, bytes, clock, percent, uptime} from './format.js';
import {poll} from './poll.js';

const windowSeconds = 300;
const usagePollMs = 2000;
const slowPollMs = 5000;
const maxLogChars = 200_000;
const MiB = 1024 * 1024;

// policyOf is the chute's resource policy as its info reports it: the
// top-level "resources" when present, else the manifest's.
const policyOf = (chute) => chute.resources || chute.manifest?.resources || {};

// limitsInForce asks the daemon for the limits in force (the manifest's as
// changed by the operator's policy), falling back to the chute's info.
async function limitsInForce(chute, signal) {
  try {
    return await getJSON(chutePath(chute.name, '/resources'), {signal});
  } catch (err) {
    if (err instanceof APIError && err.status === 404) return policyOf(chute);
    throw err;
  }
}

export async function chutePage(view, signal, name, who = {operator: true}) {
  const title = h('h1', {}, name);
  const summary = h('p');
  const activity = changePanel('Progress of the last action');
  const actions = h('div', {class: 'buttons'});
  view.replaceChildren(title, summary, actions, activity);

  let chute, limits;
  try {
    chute = await getJSON(chutePath(name), {signal});
    limits = await limitsInForce(chute, signal);
  } catch (err) {
    if (signal.aborted) return;
    view.replaceChildren(title, h('p', {class: 'error'}, err.message), h('p', {}, h('a', {href: '/'}, 'Back to the dashboard')));
    return;
  }

  const charts = {
    cpu: new Chart('CPU (% of one core)', {format: (v) => `${Math.round(v)} %`, yMin: 0}),
    mem: new Chart('Memory', {format: bytes, yMin: 0}),
    pids: new Chart('Processes', {format: (v) => String(Math.round(v)), yMin: 0}),
    net: new Chart('Network', {format: bitsPerSecond, yMin: 0}),
  };
  signal.addEventListener('abort', () => Object.values(charts).forEach((c) => c.destroy()));
  const current = h('dl', {class: 'current', id: 'current-usage'});
  const usageError = h('p', {class: 'error', hidden: true});
  const refreshLimits = async () => {
    try {
      limits = await limitsInForce(chute, signal);
    } catch { /* keep the last known limits; the usage poll reports errors */ }
  };
  const resources = resourceForm(name, limits, chute.manifest?.policy?.grace, refreshLimits);
  const logs = logSection(name, signal);
  const flows = h('div');
  const history = h('div');

  view.append(
    section('usage-h', 'Usage', usageError, current,
      h('div', {class: 'charts'}, charts.cpu.figure, charts.mem.figure, charts.pids.figure, charts.net.figure)),
    section('res-h', 'Resource policy', resources.form),
    section('logs-h', 'Logs', ...logs),
    section('flows-h', 'Network rules', flows),
    section('hist-h', 'Changes', history));

  const showChute = (c) => {
    chute = c;
    summary.replaceChildren(
      h('span', {class: `state-${c.state}`}, c.state), ` · version ${c.version} · up ${uptime(c)} · ${c.restarts} restarts`,
      ...(who.operator ? [' · owner ', h('span', {class: 'owner'}, ownerName(c))] : []),
      ' · ', ...(c.signed_by ? ['signed by key ', h('code', {class: 'signed-by', title: 'the minisign key ID that signed its package'}, c.signed_by)] : [h('span', {class: 'unsigned'}, 'unsigned')]),
      ...(c.error ? [h('span', {class: 'error'}, ` · ${c.error}`)] : []),
      ...(pageLink(c, who.lanAddr) ? [' · ', pageLink(c, who.lanAddr)] : []));
    const focused = document.activeElement?.getAttribute('aria-label');
    actions.replaceChildren(...actionButtons(c, activity, refreshChute));
    if (focused) actions.querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
  };
  const refreshChute = async () => {
    try {
      showChute(await getJSON(chutePath(name), {signal}));
    } catch (err) {
      if (err instanceof APIError && err.status === 404) summary.replaceChildren(h('span', {class: 'error'}, 'This chute is no longer installed.'));
    }
  };
  showChute(chute);

  poll(async () => {
    try {
      const {samples} = await getJSON(chutePath(name, `/usage?window=${windowSeconds}`), {signal});
      usageError.hidden = true;
      drawUsage(charts, current, samples, limits);
    } catch (err) {
      if (signal.aborted) return;
      usageError.textContent = `Usage: ${err.message}`;
      usageError.hidden = false;
    }
  }, usagePollMs, signal);
  poll(async () => {
    await Promise.all([refreshChute(), refreshLimits(), showFlows(name, flows, signal), showHistory(name, history, signal)]);
  }, slowPollMs, signal);
}

function section(id, heading, ...children) {
  return h('section', {class: 'card', 'aria-labelledby': id}, h('h2', {id}, heading), ...children);
}

function drawUsage(charts, current, samples, policy) {
  const t = samples.map((s) => s.t);
  const col = (f) => samples.map(f);
  const cpuLimit = policy.cpu_max ? policy.cpu_max * 100 : null;
  charts.cpu.update(t, [
    {label: 'cpu', values: col((s) => s.cpu)},
    ...(cpuLimit ? [{label: 'limit', values: col(() => cpuLimit), color: '#b3261e', dash: [6, 4]}] : []),
  ]);
  charts.mem.update(t, [
    {label: 'used', values: col((s) => s.mem)},
    {label: 'limit', values: col((s) => s.mem_limit || null), color: '#b3261e', dash: [6, 4]},
  ]);
  charts.pids.update(t, [
    {label: 'pids', values: col((s) => s.pids)},
    ...(policy.pids ? [{label: 'limit', values: col(() => policy.pids), color: '#b3261e', dash: [6, 4]}] : []),
  ]);
  charts.net.update(t, [
    {label: 'rx', values: col((s) => s.rx_bps)},
    {label: 'tx', values: col((s) => s.tx_bps)},
  ]);
  const last = samples.at(-1);
  if (!last) return;
  const row = (term, value) => [h('dt', {}, term), h('dd', {}, value)];
  current.replaceChildren(
    ...row('CPU', `${percent(last.cpu)} of a core${cpuLimit ? ` (limit ${percent(cpuLimit)})` : ''}`),
    ...row('CPUs', cpuList(policy.cpus)),
    ...row('Memory', `${bytes(last.mem)}${last.mem_limit ? ` of ${bytes(last.mem_limit)}` : ''}`),
    ...row('Processes', `${last.pids ?? '–'}${policy.pids ? ` of ${policy.pids}` : ''}`),
    ...row('Network', `rx ${bitsPerSecond(last.rx_bps)}, tx ${bitsPerSecond(last.tx_bps)}`));
}

// resourceForm edits the live resource policy. The daemon asks the chute
// to comply first (grace), then forces the new limits; the change's steps
// show both phases.
function resourceForm(name, policy, grace, onApplied) {
  const field = (id, label, attrs, hint) => [
    h('div', {},
      h('label', {for: id}, label),
      h('input', {id, name: id, type: 'number', required: true, 'aria-describedby': `${id}-hint`, ...attrs}),
      h('p', {class: 'hint', id: `${id}-hint`}, hint)),
  ];
  const mbit = (bitsPerSecond) => (bitsPerSecond || 0) / 1e6;
  const progress = changePanel('Progress of the resource change');
  const error = h('p', {class: 'error', role: 'alert'});
  const form = h('form', {id: 'resources', novalidate: false},
    h('div', {class: 'form-grid'},
      field('cpu_max', 'CPU limit (cores)', {min: 0.01, max: 64, step: 0.01, value: policy.cpu_max ?? 1}, 'e.g. 0.5 is half a core'),
      field('cpu_weight', 'CPU weight', {min: 1, max: 10000, step: 1, value: policy.cpu_weight ?? 100}, 'share when the CPU is contended'),
      // Text, unchecked here: the daemon knows which CPUs are online and
      // says why a list is refused.
      field('cpus', 'CPUs', {type: 'text', required: false, autocomplete: 'off', spellcheck: 'false',
        value: policy.cpus ?? ''}, 'e.g. 0, 0-1 or 0,2; empty: every CPU'),
      field('memory', 'Memory (MiB)', {min: 4, step: 1, value: Math.round((policy.memory || 64 * MiB) / MiB)}, 'at least 4'),
      field('pids', 'Processes', {min: 1, max: 32768, step: 1, value: policy.pids ?? 64}, 'most processes at once'),
      field('egress', 'Egress (Mbit/s)', {min: 0, step: 0.1, value: mbit(policy.bandwidth?.egress)}, '0: unlimited'),
      field('ingress', 'Ingress (Mbit/s)', {min: 0, step: 0.1, value: mbit(policy.bandwidth?.ingress)}, '0: unlimited'),
      field('grace', 'Grace (seconds)', {min: 0, step: 1, value: parseSeconds(grace) ?? 10}, 'time the chute has to comply before the limits are forced')),
    h('p', {}, h('label', {class: 'inline', for: 'force'},
      h('input', {id: 'force', name: 'force', type: 'checkbox'}), 'Force now, without asking the chute')),
    h('div', {class: 'buttons'}, h('button', {type: 'submit', class: 'primary'}, 'Apply')),
    error, progress);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const v = (id) => Number(form.elements[id].value);
    const body = {
      cpu_max: v('cpu_max'),
      cpu_weight: v('cpu_weight'),
      cpus: form.elements.cpus.value.trim(),
      memory: Math.round(v('memory') * MiB),
      pids: v('pids'),
      bandwidth: {egress: Math.round(v('egress') * 1e6), ingress: Math.round(v('ingress') * 1e6)},
      grace: `${v('grace')}s`,
      force: form.elements.force.checked,
    };
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      announce(`Applying the resource policy of ${name}`);
      const queued = await (await request('PUT', chutePath(name, '/resources'), {body})).json();
      await followChange(queued.change_id, progress);
      await onApplied();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      submit.disabled = false;
    }
  });
  return {form};
}

// cpuList names the CPUs a chute may run on: its policy's list, or every
// CPU when there is none.
const cpuList = (cpus) => cpus || 'all';

// parseSeconds reads a Go duration such as "10s" or "1m30s" as seconds.
function parseSeconds(text) {
  if (!text) return null;
  const units = {h: 3600, m: 60, s: 1, ms: 0.001};
  let total = 0;
  for (const [, n, unit] of text.matchAll(/([\d.]+)(ms|h|m|s)/g)) total += Number(n) * units[unit];
  return total;
}

function logSection(name, signal) {
  const pre = h('pre', {class: 'logs', id: 'logs', tabindex: 0, 'aria-label': `Log of ${name}`});
  const follow = h('input', {type: 'checkbox', id: 'follow', checked: true});
  const status = h('span', {class: 'hint', role: 'status'});
  let stream = null;
  const start = () => {
    stream?.abort();
    stream = new AbortController();
    const mine = stream;
    signal.addEventListener('abort', () => mine.abort(), {once: true});
    pre.textContent = '';
    status.textContent = 'following';
    followLogs(name, (text) => {
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = (pre.textContent + text).slice(-maxLogChars);
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }, mine.signal).then(
      () => { status.textContent = 'log ended'; },
      (err) => { if (!mine.signal.aborted) status.textContent = `log: ${err.message}`; });
  };
  follow.addEventListener('change', () => {
    if (follow.checked) start();
    else { stream?.abort(); status.textContent = 'paused'; }
  });
  start();
  return [h('p', {}, h('label', {class: 'inline', for: 'follow'}, follow, 'Follow'), ' ', status), pre];
}

// showFlows renders the chute's network rules with whatever fields the
// daemon reports, so that new counters need no UI change.
async function showFlows(name, box, signal) {
  try {
    const {rules = []} = await getJSON(chutePath(name, '/flows'), {signal});
    if (!rules.length) return box.replaceChildren(h('p', {}, 'No rules.'));
    const columns = [...new Set(rules.flatMap((r) => Object.keys(r)))];
    const cell = (v) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v ?? ''));
    box.replaceChildren(h('div', {class: 'table-wrap'}, h('table', {},
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', {}, rules.map((r) => h('tr', {}, columns.map((c) =>
        h('td', {class: typeof r[c] === 'number' ? 'num' : ''}, cell(r[c])))))))));
  } catch (err) {
    if (signal.aborted) return;
    const disabled = err instanceof APIError && err.status === 404;
    box.replaceChildren(h('p', {class: disabled ? 'hint' : 'error'}, disabled ? 'Networking disabled.' : err.message));
  }
}

async function showHistory(name, box, signal) {
  try {
    const {changes} = await getJSON('/api/v1/changes', {signal});
    const mine = changes.filter((c) => c.chute === name).sort((a, b) => b.id - a.id);
    if (!mine.length) return box.replaceChildren(h('p', {}, 'No changes yet.'));
    // Re-render only on news, so that focus and scrolling stay put.
    const key = JSON.stringify(mine.map((c) => [c.id, c.state, c.steps?.length]));
    if (key === box.dataset.key) return;
    box.dataset.key = key;
    const open = new Set([...box.querySelectorAll('details[open]')].map((d) => d.dataset.id));
    box.replaceChildren(...mine.map((c) => h('details', {dataset: {id: String(c.id)}, open: open.has(String(c.id))},
      h('summary', {}, `#${c.id} ${clock(c.created)} — ${changeSummary(c)}`, c.actor ? h('span', {class: 'hint actor'}, ` by ${c.actor}`) : null),
      stepList(c))));
  } catch (err) {
    if (!signal.aborted) box.replaceChildren(h('p', {class: 'error'}, err.message));
  }
}
