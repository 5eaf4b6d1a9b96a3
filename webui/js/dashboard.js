// Dashboard: the gateway's usage, each chute's share of it, and the chutes.

import {getJSON} from './api.js';
import {changePanel} from './changes.js';
import {Chart} from './charts.js';
import {h} from './dom.js';
import {bitsPerSecond, bytes, uptime} from './format.js';
import {actionButtons, ownerName, pageLink} from './actions.js';
import {poll} from './poll.js';
import {quotaList} from './quota.js';

const windowSeconds = 300;
const pollMs = 2000;
// A gateway has many interfaces (a veth per chute, OVS ports); more lines
// than this make the chart unreadable.
const maxIfaces = 3;

export function dashboard(view, signal, who = {operator: true}) {
  const charts = {
    cpu: new Chart('Gateway CPU', {format: (v) => `${Math.round(v)} %`, yMin: 0, yMax: 100}),
    mem: new Chart('Gateway memory', {format: bytes, yMin: 0}),
    disk: new Chart('Gateway disk', {format: bytes, yMin: 0}),
    net: new Chart(`Gateway network (the ${maxIfaces} busiest interfaces)`, {format: bitsPerSecond, yMin: 0}),
    chuteCPU: new Chart('Chutes’ share of CPU (% of gateway)', {format: (v) => `${v.toFixed(1)} %`, yMin: 0, stacked: true}),
    chuteMem: new Chart('Chutes’ memory', {format: bytes, yMin: 0, stacked: true}),
  };
  signal.addEventListener('abort', () => Object.values(charts).forEach((c) => c.destroy()));

  const usageError = h('p', {class: 'error', hidden: true});
  const tbody = h('tbody');
  const listError = h('p', {class: 'error', hidden: true});
  const activity = changePanel('Progress of the last action');
  const quotaError = h('p', {class: 'error', hidden: true});
  const quotaBox = h('div', {id: 'my-quota'});

  // The gateway's usage is the operator's: a developer sees its chutes.
  const gateway = who.operator ? [
    h('section', {class: 'card', 'aria-labelledby': 'gw-h'},
      h('h2', {id: 'gw-h'}, 'Gateway'),
      usageError,
      h('div', {class: 'charts'}, charts.cpu.figure, charts.mem.figure, charts.disk.figure, charts.net.figure)),
    h('section', {class: 'card', 'aria-labelledby': 'share-h'},
      h('h2', {id: 'share-h'}, 'Chutes’ share'),
      h('div', {class: 'charts'}, charts.chuteCPU.figure, charts.chuteMem.figure))] : [
    h('p', {class: 'hint', id: 'developer-note'},
      `Logged in as ${who.actor}: these are your chutes. The gateway’s own usage is the operator’s to see; each chute’s page shows its usage.`),
    h('section', {class: 'card', 'aria-labelledby': 'quota-h'},
      h('h2', {id: 'quota-h'}, 'Your quota'),
      h('p', {class: 'hint'}, 'What your chutes hold (their limits, not their current use) of what the operator allows you; an install or change beyond it is refused.'),
      quotaError, quotaBox)];

  view.replaceChildren(
    h('h1', {}, 'Dashboard'),
    h('section', {class: 'card', 'aria-labelledby': 'chutes-h'},
      h('h2', {id: 'chutes-h'}, 'Chutes'),
      listError,
      h('div', {class: 'table-wrap'},
        h('table', {class: 'chutes'},
          h('thead', {}, h('tr', {},
            h('th', {scope: 'col'}, 'Name'),
            who.operator ? h('th', {scope: 'col'}, 'Owner') : null,
            h('th', {scope: 'col'}, 'State'),
            h('th', {scope: 'col'}, 'Version'), h('th', {scope: 'col', class: 'num'}, 'Uptime'),
            h('th', {scope: 'col', class: 'num'}, 'Restarts'), h('th', {scope: 'col'}, 'Actions'))),
          tbody)),
      h('p', {}, h('a', {href: '/install'}, 'Install a chute…')),
      activity),
    ...gateway);

  let shown = '';
  const refreshChutes = async () => {
    try {
      const {chutes} = await getJSON('/api/v1/chutes', {signal});
      listError.hidden = true;
      // Rebuild rows only when something changed, so that keyboard focus
      // stays put; uptime alone is updated in place.
      const key = JSON.stringify(chutes.map(({manifest, ...rest}) => rest));
      if (key !== shown) {
        shown = key;
        renderRows(tbody, chutes, activity, refreshChutes, who);
      }
      for (const c of chutes) {
        const cell = tbody.querySelector(`tr[data-chute="${CSS.escape(c.name)}"] .uptime`);
        if (cell) cell.textContent = uptime(c);
      }
    } catch (err) {
      if (signal.aborted) return;
      listError.textContent = `Chutes: ${err.message}`;
      listError.hidden = false;
    }
  };

  const refreshUsage = async () => {
    try {
      const {samples} = await getJSON(`/api/v1/gateway/usage?window=${windowSeconds}`, {signal});
      usageError.hidden = true;
      drawGateway(charts, samples);
    } catch (err) {
      if (signal.aborted) return;
      usageError.textContent = `Usage: ${err.message}`;
      usageError.hidden = false;
    }
  };

  const refreshQuota = async () => {
    try {
      const {developer} = await getJSON('/api/v1/whoami', {signal});
      quotaError.hidden = true;
      quotaBox.replaceChildren(...[quotaList(developer), tokenExpiry(developer.tokens)].filter(Boolean));
    } catch (err) {
      if (signal.aborted) return;
      quotaError.textContent = `Quota: ${err.message}`;
      quotaError.hidden = false;
    }
  };

  poll(async () => { await Promise.all([refreshChutes(), who.operator ? refreshUsage() : refreshQuota()]); }, pollMs, signal);
}

// tokenExpiry says when the developer's tokens expire, if any does.
function tokenExpiry(tokens = []) {
  const expiring = tokens.filter((t) => t.expires);
  if (!expiring.length) return null;
  return h('p', {class: 'hint', id: 'token-expiry'}, 'Your tokens expire: ',
    expiring.flatMap((t, i) => [i ? ', ' : '', `${t.id} at `, h('time', {datetime: t.expires}, new Date(t.expires).toLocaleString())]));
}

function renderRows(tbody, chutes, activity, refresh, who) {
  const focused = document.activeElement?.getAttribute('aria-label');
  tbody.replaceChildren(...chutes.map((c) => h('tr', {dataset: {chute: c.name}},
    h('td', {'data-label': 'Name'}, h('a', {href: `/chutes/${encodeURIComponent(c.name)}`}, c.name),
      pageLink(c, who.lanAddr)),
    who.operator ? h('td', {'data-label': 'Owner', class: 'owner'}, ownerName(c)) : null,
    h('td', {'data-label': 'State', class: `state-${c.state}`},
      c.state, c.error ? h('span', {class: 'hint'}, ` (${c.error})`) : null),
    h('td', {'data-label': 'Version'}, c.version),
    h('td', {'data-label': 'Uptime', class: 'num uptime'}, uptime(c)),
    h('td', {'data-label': 'Restarts', class: 'num'}, String(c.restarts)),
    h('td', {'data-label': 'Actions', class: 'actions'}, actionButtons(c, activity, refresh)))));
  if (!chutes.length) {
    tbody.append(h('tr', {}, h('td', {colspan: who.operator ? 7 : 6}, 'No chutes installed yet.')));
  }
  if (focused) tbody.querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
}

function drawGateway(charts, samples) {
  const t = samples.map((s) => s.t);
  const col = (f) => samples.map(f);
  charts.cpu.update(t, [{label: 'CPU', values: col((s) => s.cpu)}]);
  charts.mem.update(t, [
    {label: 'used', values: col((s) => s.mem_used)},
    {label: 'total', values: col((s) => s.mem_total), dash: [4, 4]},
  ]);
  charts.disk.update(t, [
    {label: 'used', values: col((s) => s.disk_used)},
    {label: 'total', values: col((s) => s.disk_total), dash: [4, 4]},
  ]);
  const traffic = {};
  for (const s of samples) {
    for (const [name, v] of Object.entries(s.ifaces || {})) {
      if (name !== 'lo') traffic[name] = (traffic[name] || 0) + (v.rx_bps || 0) + (v.tx_bps || 0);
    }
  }
  // Sorted by name after the cut, so that lines keep their colours.
  const ifaces = Object.keys(traffic).sort((a, b) => traffic[b] - traffic[a]).slice(0, maxIfaces).sort();
  charts.net.update(t, ifaces.flatMap((name) => [
    {label: `${name} rx`, values: col((s) => s.ifaces?.[name]?.rx_bps ?? null)},
    {label: `${name} tx`, values: col((s) => s.ifaces?.[name]?.tx_bps ?? null)},
  ]));
  const chutes = [...new Set(samples.flatMap((s) => Object.keys(s.chutes || {})))].sort();
  charts.chuteCPU.update(t, chutes.map((name) => ({label: name, values: col((s) => s.chutes?.[name]?.cpu ?? 0)})));
  charts.chuteMem.update(t, chutes.map((name) => ({label: name, values: col((s) => s.chutes?.[name]?.mem ?? 0)})));
}

