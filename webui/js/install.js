// Install: upload a chute package and follow its installation.

import {h} from './dom.js';
import {sendPackage} from './actions.js';

export function installPage(view) {
  const file = h('input', {type: 'file', id: 'package', name: 'package', required: true,
    accept: '.tar,.tgz,.tar.gz,.gz,application/gzip,application/x-tar', 'aria-describedby': 'package-hint'});
  const panel = h('div', {id: 'install-progress', role: 'status', 'aria-live': 'polite'});
  const submit = h('button', {type: 'submit', class: 'primary'}, 'Install');
  const form = h('form', {id: 'install'},
    h('label', {for: 'package'}, 'Chute package'),
    file,
    h('p', {class: 'hint', id: 'package-hint'}, 'A .tar or .tar.gz holding chute.yaml and rootfs/ or image.tar.'),
    h('div', {class: 'buttons'}, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!file.files.length) return file.focus();
    submit.disabled = true;
    const change = await sendPackage('POST', '/api/v1/chutes', file.files[0], panel);
    submit.disabled = false;
    if (change?.state === 'done') {
      panel.append(h('p', {}, h('a', {href: `/chutes/${encodeURIComponent(change.chute)}`}, `Open ${change.chute}`)));
    }
  });
  view.replaceChildren(h('h1', {}, 'Install a chute'), h('section', {class: 'card'}, form, panel));
}
