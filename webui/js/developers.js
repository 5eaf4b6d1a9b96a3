// Developers: the operator's page to list, create, edit and remove
// developers (quota, signing keys, what they are allowed) and to add and
// revoke their tokens. A new token is shown once, in the answer that made
// it; the daemon keeps only its hash.

import {getJSON, request, sendJSON} from './api.js';
import {announce, confirmDialog, h} from './dom.js';
import {quantity, rate} from './format.js';
import {quotaList} from './quota.js';

const devPath = (name, rest = '') => `/api/v1/developers/${encodeURIComponent(name)}${rest}`;
const lines = (text) => text.split(/[\n,]/).map((l) => l.trim()).filter(Boolean);
const when = (iso) => h('time', {datetime: iso}, new Date(iso).toLocaleString());

export function developersPage(view, signal) {
  const tbody = h('tbody');
  const error = h('p', {class: 'error', role: 'alert', id: 'developers-error'});
  const shown = h('div', {id: 'new-token', role: 'status'});
  const editor = h('section', {class: 'card', id: 'edit-card', 'aria-labelledby': 'edit-dev-h', hidden: true});

  const refresh = async () => {
    try {
      // A refusal act just showed stays: act clears the line first.
      const {developers} = await getJSON('/api/v1/developers', {signal});
      tbody.replaceChildren(...developers.map((d) => row(d)));
      if (!developers.length) tbody.append(h('tr', {}, h('td', {colspan: 6}, 'No developers yet.')));
    } catch (err) {
      if (!signal.aborted) error.textContent = err.message;
    }
  };
  // act runs fn; a refusal is shown in where (the page's error line unless
  // said) with the daemon's reason. Resolves true if fn succeeded.
  const act = async (what, fn, where = error) => {
    error.textContent = '';
    where.textContent = '';
    let ok = false;
    try {
      await fn();
      ok = true;
    } catch (err) {
      where.textContent = `${what}: ${err.status ? `refused (${err.status}): ` : ''}${err.message}`;
      announce(where.textContent);
    }
    await refresh();
    return ok;
  };
  const showToken = (name, t) => {
    shown.replaceChildren(
      h('p', {}, `The token of ${name}. It is shown only now: copy it and hand it to the developer.`),
      h('code', {class: 'token', id: 'new-token-value'}, t.token),
      h('p', {class: 'hint', id: 'new-token-expiry'}, t.expires ? ['It expires ', when(t.expires), '.'] : 'It does not expire.'));
    announce(`New token of ${name} shown`);
  };

  const newToken = async (d) => {
    const inField = h('input', {type: 'text', id: 'token-expires-in', autocomplete: 'off', placeholder: '30d', 'aria-describedby': 'token-expires-hint'});
    const atField = h('input', {type: 'datetime-local', id: 'token-expires-at'});
    const ok = await confirmDialog(`New token for ${d.name}`, [
      h('label', {for: 'token-expires-in'}, 'Expires after'),
      inField,
      h('label', {for: 'token-expires-at'}, 'or expires at'),
      atField,
      h('p', {class: 'hint', id: 'token-expires-hint'}, 'A duration such as 12h, 30d or 1w2d, or a date and time; neither: it never expires.'),
    ], 'Make the token');
    if (!ok) return;
    act('New token', async () => {
      const t = await sendJSON('POST', devPath(d.name, '/tokens'), expiryOf(inField.value.trim(), atField.value));
      showToken(d.name, t);
    });
  };

  const row = (d) => h('tr', {dataset: {developer: d.name}},
    h('td', {}, d.name),
    h('td', {}, quotaList(d)),
    h('td', {class: 'keys'}, d.keys?.length ? `${d.keys.length} key${d.keys.length > 1 ? 's' : ''}` : '–'),
    h('td', {class: 'allowed'}, [d.allow?.unsigned ? 'unsigned packages' : null, ...(d.allow?.devices || []), ...(d.allow?.capabilities || [])]
      .filter(Boolean).join(', ') || '–'),
    h('td', {}, h('ul', {class: 'tokens'}, (d.tokens || []).map((t) => h('li', {dataset: {token: t.id}},
      t.id, t.expires ? [' (expires ', when(t.expires), ')'] : null, ' ',
      h('button', {type: 'button', 'aria-label': `Revoke token ${t.id} of ${d.name}`, onclick: async () => {
        if (await confirmDialog(`Revoke token ${t.id} of ${d.name}?`, [h('p', {}, 'It stops working at once.')], 'Revoke')) {
          act('Revoke', () => request('DELETE', devPath(d.name, `/tokens/${encodeURIComponent(t.id)}`)));
        }
      }}, 'Revoke'))))),
    h('td', {class: 'actions'},
      h('button', {type: 'button', 'aria-label': `Edit ${d.name}`, onclick: () => edit(d)}, 'Edit'),
      h('button', {type: 'button', 'aria-label': `New token for ${d.name}`, onclick: () => newToken(d)}, 'New token'),
      h('button', {type: 'button', class: 'danger', 'aria-label': `Remove ${d.name}`, onclick: async () => {
        const chutes = h('input', {type: 'checkbox', id: 'remove-chutes'});
        const ok = await confirmDialog(`Remove developer ${d.name}?`, [
          h('p', {}, 'Its tokens stop working. While it owns chutes it is not removed, unless its chutes go with it.'),
          h('label', {class: 'inline', for: 'remove-chutes'}, chutes, 'Remove its chutes too'),
        ], 'Remove');
        if (ok) act('Remove', () => request('DELETE', devPath(d.name, chutes.checked ? '?chutes=remove' : '')));
      }}, 'Remove')));

  // edit opens the form for d's quota, keys and allowances; the daemon
  // replaces them all (its tokens stay).
  const edit = (d) => {
    const spec = specForm('edit', d);
    const editError = h('p', {class: 'error', role: 'alert', id: 'edit-developer-error'});
    const form = h('form', {id: 'edit-developer'}, ...spec.fields, editError,
      h('div', {class: 'buttons'},
        h('button', {type: 'submit', class: 'primary'}, 'Save'),
        h('button', {type: 'button', onclick: () => { editor.hidden = true; }}, 'Cancel')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const saved = await act(`Save ${d.name}`, async () => {
        await sendJSON('PUT', devPath(d.name), spec.read(d.name));
      }, editError);
      if (saved) {
        editor.hidden = true;
        announce(`${d.name} saved`);
      }
    });
    editor.replaceChildren(h('h2', {id: 'edit-dev-h'}, `Edit ${d.name}`), form);
    editor.hidden = false;
    editor.scrollIntoView({block: 'nearest'});
    form.querySelector('input').focus();
  };

  const create = specForm('dev', {});
  const name = h('input', {type: 'text', id: 'dev-name', name: 'dev-name', required: true, autocomplete: 'off', 'aria-describedby': 'dev-name-hint'});
  const form = h('form', {id: 'new-developer'},
    h('label', {for: 'dev-name'}, 'Name'), name,
    h('p', {class: 'hint', id: 'dev-name-hint'}, 'Lower case letters, digits and dashes.'),
    ...create.fields,
    h('div', {class: 'buttons'}, h('button', {type: 'submit', class: 'primary'}, 'Create')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    act('Create', async () => {
      const made = await sendJSON('POST', '/api/v1/developers', create.read(name.value.trim()));
      showToken(made.name, made);
      form.reset();
    });
  });

  view.replaceChildren(
    h('h1', {}, 'Developers'),
    error,
    shown,
    h('section', {class: 'card', 'aria-labelledby': 'devs-h'},
      h('h2', {id: 'devs-h'}, 'Developers'),
      h('div', {class: 'table-wrap'}, h('table', {class: 'developers'},
        h('thead', {}, h('tr', {}, ['Name', 'Quota: used / bound', 'Keys', 'Allowed', 'Tokens', 'Actions'].map((c) => h('th', {scope: 'col'}, c)))),
        tbody))),
    editor,
    h('section', {class: 'card', 'aria-labelledby': 'new-dev-h'},
      h('h2', {id: 'new-dev-h'}, 'New developer'), form));
  refresh();
}

// specForm is the fields of what the operator sets of a developer, filled
// from d, with ids starting with prefix; read() is the body to send.
function specForm(prefix, d) {
  const q = d.quota || {};
  const id = (k) => `${prefix}-${k}`;
  const el = {};
  const input = (k, label, attrs, hint = '') => h('div', {},
    h('label', {for: id(k)}, label),
    el[k] = h('input', {type: 'text', id: id(k), name: id(k), ...attrs}),
    hint ? h('p', {class: 'hint'}, hint) : null);
  const area = (k, label, value, hint) => [
    h('label', {for: id(k)}, label),
    el[k] = h('textarea', {id: id(k), rows: 2, spellcheck: 'false', 'aria-describedby': `${id(k)}-hint`}, value),
    h('p', {class: 'hint', id: `${id(k)}-hint`}, hint)];
  const fields = [
    h('div', {class: 'form-grid'},
      input('chutes', 'Quota: chutes', {type: 'number', min: 0, step: 1, value: q.chutes || ''}, '0 or empty: no bound'),
      input('cpu', 'Quota: CPUs', {type: 'number', min: 0, step: 'any', value: q.cpu || ''}),
      input('memory', 'Quota: memory', {placeholder: '256Mi', value: q.memory ? quantity(q.memory) : ''}),
      input('disk', 'Quota: disk', {placeholder: '512Mi', value: q.disk ? quantity(q.disk) : ''}),
      input('egress', 'Quota: egress', {placeholder: '20Mbit', value: q.egress ? rate(q.egress) : ''})),
    ...area('keys', 'Minisign public keys', (d.keys || []).join('\n'),
      'One key line (from a .pub file) a line; delete a line to remove its key.'),
    h('label', {class: 'inline', for: id('unsigned')},
      el.unsigned = h('input', {type: 'checkbox', id: id('unsigned'), checked: !!d.allow?.unsigned}), 'Allow unsigned packages'),
    ...area('devices', 'Allowed devices', (d.allow?.devices || []).join('\n'), 'Device nodes its chutes may have, e.g. /dev/ttyUSB0; one a line.'),
    ...area('caps', 'Allowed capabilities', (d.allow?.capabilities || []).join('\n'), 'Beyond the default sandbox, e.g. NET_RAW; one a line.'),
  ];
  const read = (name) => {
    const v = (k) => el[k].value.trim();
    const quota = {chutes: Number(v('chutes') || 0), cpu: Number(v('cpu') || 0)};
    for (const k of ['memory', 'disk', 'egress']) if (v(k)) quota[k] = v(k);
    return {
      name,
      keys: lines(v('keys')).filter((l) => !l.startsWith('untrusted comment:')),
      quota,
      allow: {unsigned: el.unsigned.checked, devices: lines(v('devices')), capabilities: lines(v('caps'))},
    };
  };
  return {fields, read};
}

// expiryOf is the body of a new token that expires after a duration
// ("12h", "30d", "1w2d") or at a local date and time; neither: never.
function expiryOf(after, at) {
  if (after && at) throw new Error('give a duration or a date, not both');
  if (at) return {expires: new Date(at).toISOString()};
  if (!after) return {};
  const units = {m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3};
  if (!/^(\d+(\.\d+)?[mhdw])+$/.test(after)) throw new Error(`“${after}” is not a duration: use m, h, d and w, e.g. 12h or 1w2d`);
  let ms = 0;
  for (const [, n, , unit] of after.matchAll(/(\d+(\.\d+)?)([mhdw])/g)) ms += Number(n) * units[unit];
  return {expires: new Date(Date.now() + ms).toISOString()};
}
