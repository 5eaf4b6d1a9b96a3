// Developers: the operator's page to list, create and remove developers and
// to add and revoke their tokens. A new token is shown once, in the answer
// that made it; the daemon keeps only its hash.

import {getJSON, request, sendJSON} from './api.js';
import {announce, confirmDialog, h} from './dom.js';

const devPath = (name, rest = '') => `/api/v1/developers/${encodeURIComponent(name)}${rest}`;
const list = (xs) => (xs?.length ? xs.join(', ') : '–');
const quotaText = (q = {}) => {
  const parts = Object.entries(q).filter(([, v]) => v && v !== '0').map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : 'none';
};

export function developersPage(view, signal) {
  const tbody = h('tbody');
  const error = h('p', {class: 'error', role: 'alert', id: 'developers-error'});
  const shown = h('div', {id: 'new-token', role: 'status'});

  const refresh = async () => {
    try {
      const {developers} = await getJSON('/api/v1/developers', {signal});
      error.textContent = '';
      tbody.replaceChildren(...developers.map((d) => row(d)));
      if (!developers.length) tbody.append(h('tr', {}, h('td', {colspan: 6}, 'No developers yet.')));
    } catch (err) {
      if (!signal.aborted) error.textContent = err.message;
    }
  };
  const act = async (what, fn) => {
    error.textContent = '';
    try {
      await fn();
    } catch (err) {
      error.textContent = `${what}: ${err.message}`;
      announce(error.textContent);
    }
    await refresh();
  };
  const showToken = (name, token) => {
    shown.replaceChildren(
      h('p', {}, `The token of ${name}. It is shown only now: copy it and hand it to the developer.`),
      h('code', {class: 'token', id: 'new-token-value'}, token));
    announce(`New token of ${name} shown`);
  };

  const row = (d) => h('tr', {dataset: {developer: d.name}},
    h('td', {}, d.name),
    h('td', {}, quotaText(d.quota)),
    h('td', {class: 'keys'}, d.keys?.length ? `${d.keys.length} key${d.keys.length > 1 ? 's' : ''}` : '–'),
    h('td', {}, [d.allow?.unsigned ? 'unsigned packages' : null, ...(d.allow?.devices || []), ...(d.allow?.capabilities || [])]
      .filter(Boolean).join(', ') || '–'),
    h('td', {}, h('ul', {class: 'tokens'}, (d.tokens || []).map((t) => h('li', {dataset: {token: t.id}},
      `${t.id}${t.expires ? ` (expires ${new Date(t.expires).toLocaleString()})` : ''} `,
      h('button', {type: 'button', 'aria-label': `Revoke token ${t.id} of ${d.name}`, onclick: async () => {
        if (await confirmDialog(`Revoke token ${t.id} of ${d.name}?`, [h('p', {}, 'It stops working at once.')], 'Revoke')) {
          act('Revoke', () => request('DELETE', devPath(d.name, `/tokens/${encodeURIComponent(t.id)}`)));
        }
      }}, 'Revoke'))))),
    h('td', {class: 'actions'},
      h('button', {type: 'button', 'aria-label': `New token for ${d.name}`, onclick: () => act('New token', async () => {
        const t = await sendJSON('POST', devPath(d.name, '/tokens'), {});
        showToken(d.name, t.token);
      })}, 'New token'),
      h('button', {type: 'button', class: 'danger', 'aria-label': `Remove ${d.name}`, onclick: async () => {
        const chutes = h('input', {type: 'checkbox', id: 'remove-chutes'});
        const ok = await confirmDialog(`Remove developer ${d.name}?`, [
          h('p', {}, 'Its tokens stop working. While it owns chutes it is not removed, unless its chutes go with it.'),
          h('label', {class: 'inline', for: 'remove-chutes'}, chutes, 'Remove its chutes too'),
        ], 'Remove');
        if (ok) act('Remove', () => request('DELETE', devPath(d.name, chutes.checked ? '?chutes=remove' : '')));
      }}, 'Remove')));

  const field = (id, label, attrs = {}, hint = '') => [
    h('label', {for: id}, label), h('input', {type: 'text', id, name: id, ...attrs}),
    hint ? h('p', {class: 'hint'}, hint) : null];
  const form = h('form', {id: 'new-developer'},
    h('div', {class: 'form-grid'},
      h('div', {}, ...field('dev-name', 'Name', {required: true, autocomplete: 'off'},
        'Lower case letters, digits and dashes.')),
      h('div', {}, ...field('dev-chutes', 'Quota: chutes', {type: 'number', min: 0, step: 1}, '0: no bound')),
      h('div', {}, ...field('dev-cpu', 'Quota: CPUs', {type: 'number', min: 0, step: 'any'})),
      h('div', {}, ...field('dev-memory', 'Quota: memory', {placeholder: '256Mi'})),
      h('div', {}, ...field('dev-disk', 'Quota: disk', {placeholder: '512Mi'})),
      h('div', {}, ...field('dev-egress', 'Quota: egress', {placeholder: '20Mbit'}))),
    h('label', {for: 'dev-keys'}, 'Minisign public keys'),
    h('textarea', {id: 'dev-keys', rows: 2, spellcheck: 'false'}),
    h('p', {class: 'hint'}, 'One key line (from a .pub file) a line.'),
    h('label', {class: 'inline', for: 'dev-unsigned'}, h('input', {type: 'checkbox', id: 'dev-unsigned'}), 'Allow unsigned packages'),
    h('div', {class: 'buttons'}, h('button', {type: 'submit', class: 'primary'}, 'Create')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const quota = {chutes: Number(v('dev-chutes') || 0), cpu: Number(v('dev-cpu') || 0)};
    for (const k of ['memory', 'disk', 'egress']) if (v(`dev-${k}`)) quota[k] = v(`dev-${k}`);
    const body = {
      name: v('dev-name'),
      keys: v('dev-keys').split('\n').map((l) => l.trim()).filter(Boolean),
      quota,
      allow: {unsigned: form.querySelector('#dev-unsigned').checked, devices: [], capabilities: []},
    };
    act('Create', async () => {
      const made = await sendJSON('POST', '/api/v1/developers', body);
      showToken(made.name, made.token);
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
        h('thead', {}, h('tr', {}, ['Name', 'Quota', 'Keys', 'Allowed', 'Tokens', 'Actions'].map((c) => h('th', {scope: 'col'}, c)))),
        tbody))),
    h('section', {class: 'card', 'aria-labelledby': 'new-dev-h'},
      h('h2', {id: 'new-dev-h'}, 'New developer'), form));
  refresh();
}
