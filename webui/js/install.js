// Install: upload a chute package, and its signature if it has one, and
// follow its installation.

import {h} from './dom.js';
import {packageFields, sendPackage} from './actions.js';

export function installPage(view) {
  const {pkg, sig, fields} = packageFields();
  pkg.required = true;
  const panel = h('div', {id: 'install-progress', role: 'status', 'aria-live': 'polite'});
  const submit = h('button', {type: 'submit', class: 'primary'}, 'Install');
  const form = h('form', {id: 'install'}, ...fields, h('div', {class: 'buttons'}, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!pkg.files.length) return pkg.focus();
    submit.disabled = true;
    const change = await sendPackage('POST', '/api/v1/chutes', pkg.files[0], panel, sig.files[0]);
    submit.disabled = false;
    if (change?.state === 'done') {
      panel.append(h('p', {}, h('a', {href: `/chutes/${encodeURIComponent(change.chute)}`}, `Open ${change.chute}`)));
    }
  });
  view.replaceChildren(h('h1', {}, 'Install a chute'), h('section', {class: 'card'}, form, panel));
}
