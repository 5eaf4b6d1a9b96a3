// The operator's actions on a chute, shared by the dashboard's table and
// the chute's page: start, stop, restart, update (upload) and remove; and
// what both show of it (its owner, the link to its own page).

import {chutePath, request, upload} from './api.js';
import {announce, confirmDialog, h} from './dom.js';
import {changePanel, followChange} from './changes.js';
import {bytes} from './format.js';

// actionButtons returns the buttons for chute name; each action's change
// is followed in panel (a changePanel), then onDone runs.
export function actionButtons(chute, panel, onDone) {
  const name = chute.name;
  const run = async (label, method, path) => {
    try {
      announce(`${label} ${name}…`);
      const queued = await (await request(method, path)).json();
      await followChange(queued.change_id, panel);
    } catch (err) {
      panel.replaceChildren(h('p', {class: 'error'}, `${label} ${name}: ${err.message}`));
      announce(`${label} ${name} failed: ${err.message}`);
    }
    onDone?.();
  };
  const button = (label, handler, attrs = {}) =>
    h('button', {type: 'button', 'aria-label': `${label} ${name}`, onclick: handler, ...attrs}, label);
  const running = chute.state === 'running';
  return [
    button('Start', () => run('Start', 'POST', chutePath(name, '/start')), {disabled: running}),
    button('Stop', () => run('Stop', 'POST', chutePath(name, '/stop')), {disabled: !running}),
    button('Restart', () => run('Restart', 'POST', chutePath(name, '/restart'))),
    button('Update', () => pickUpdate(name, panel, onDone)),
    button('Remove', async () => {
      const keep = h('input', {type: 'checkbox', id: 'keep-data'});
      const ok = await confirmDialog(`Remove ${name}?`, [
        h('p', {}, `The chute stops and is deleted. Unless you keep its data, everything in its /data is lost.`),
        h('label', {class: 'inline', for: 'keep-data'}, keep, 'Keep its data (a reinstall finds it again)'),
      ], 'Remove');
      if (ok) run('Remove', 'DELETE', chutePath(name, keep.checked ? '?keep_data=1' : ''));
    }, {class: 'danger'}),
  ];
}

// pickUpdate asks for a package file, and optionally its signature, and
// uploads them as the chute's update.
async function pickUpdate(name, panel, onDone) {
  const {pkg, sig, fields} = packageFields('update');
  if (!await confirmDialog(`Update ${name}`, fields, 'Update')) return;
  if (!pkg.files.length) {
    panel.replaceChildren(h('p', {class: 'error'}, `Update ${name}: no package chosen`));
    return;
  }
  await sendPackage('PUT', chutePath(name), pkg.files[0], panel, sig.files[0]);
  onDone?.();
}

// packageFields are the file inputs of an upload: the package, and its
// optional detached signature; their ids start with prefix, if any.
export function packageFields(prefix = '') {
  const id = (k) => (prefix ? `${prefix}-${k}` : k);
  const pkg = h('input', {type: 'file', id: id('package'), name: 'package',
    accept: '.tar,.tgz,.tar.gz,.gz,application/gzip,application/x-tar', 'aria-describedby': id('package-hint')});
  const sig = h('input', {type: 'file', id: id('signature'), name: 'signature', accept: '.minisig',
    'aria-describedby': id('signature-hint')});
  return {pkg, sig, fields: [
    h('label', {for: pkg.id}, 'Chute package'), pkg,
    h('p', {class: 'hint', id: id('package-hint')}, 'A .tar or .tar.gz holding chute.yaml and rootfs/ or image.tar.'),
    h('label', {for: sig.id}, 'Signature (optional)'), sig,
    h('p', {class: 'hint', id: id('signature-hint')},
      'Its minisign signature (minisign -S -m PKG makes PKG.minisig). A developer’s package needs one by one of its keys, unless the operator allows it unsigned.'),
  ]};
}

// sendPackage uploads file (with its signature, if any) with a progress
// bar in panel, then follows the change it started. Resolves to the
// change, or null if the upload failed.
export async function sendPackage(method, path, file, panel, signature = null) {
  const bar = h('progress', {max: file.size || 1, value: 0, id: 'upload-progress', 'aria-label': `Uploading ${file.name}`});
  const text = h('p', {}, `Uploading ${file.name} (${bytes(file.size)})…`);
  panel.replaceChildren(text, bar);
  announce(`Uploading ${file.name}`);
  let lastTenth = -1;
  try {
    const queued = await upload(method, path, file, (loaded, total) => {
      bar.max = total;
      bar.value = loaded;
      text.textContent = `Uploading ${file.name}: ${bytes(loaded)} of ${bytes(total)}`;
      const tenth = Math.floor((loaded / total) * 10);
      if (tenth !== lastTenth) announce(`Upload ${tenth * 10} %`);
      lastTenth = tenth;
    }, signature);
    const steps = changePanel(`Progress of ${file.name}`);
    panel.replaceChildren(h('p', {}, `Uploaded ${file.name}.`), steps);
    return await followChange(queued.change_id, steps);
  } catch (err) {
    panel.replaceChildren(h('p', {class: 'error'}, `${file.name}: ${err.message}`));
    announce(`${file.name}: ${err.message}`);
    return null;
  }
}

// ownerName is who owns a chute, as the operator reads it.
export const ownerName = (chute) => (chute.owner ? `developer ${chute.owner}` : 'operator');

// pageLink links the chute's own page as LAN users reach it: the
// gateway's LAN address at the port it exposes for its web server (the
// port of its HTTP health check, else its port 80, else 443), if any.
export function pageLink(c, lanAddr) {
  const tcp = (c.manifest?.net?.expose || []).filter((e) => (e.proto || 'tcp') === 'tcp');
  const healthPort = c.manifest?.health?.http?.port;
  const e = tcp.find((x) => x.port === healthPort) || tcp.find((x) => x.port === 80) || tcp.find((x) => x.port === 443);
  if (!lanAddr || !e) return null;
  const host = lanAddr.includes(':') ? `[${lanAddr}]` : lanAddr;
  const url = `${e.port === 443 ? 'https' : 'http'}://${host}:${e.gateway_port}/`;
  return h('a', {class: 'chute-page', href: url, target: '_blank', rel: 'noopener noreferrer',
    'aria-label': `${c.name}'s page on the LAN`, title: `${c.name}'s page, as the LAN sees it`}, 'page ↗');
}
