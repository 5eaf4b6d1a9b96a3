// Small DOM helpers. Text always goes in as text nodes, never as HTML, so
// that names and log lines from chutes cannot inject markup.

// h builds an element: h('a', {href: '/'}, 'text', child, ...). Attributes
// starting with "on" are listeners; false or null attributes are left out.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? '' : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// announce tells screen readers about progress through the live region.
export function announce(message) {
  document.getElementById('announce').textContent = message;
}

// confirmDialog asks a question in the page's <dialog>; body holds the
// extra controls (a checkbox, say). Resolves true if the operator agreed.
export function confirmDialog(title, body, okLabel) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-body').replaceChildren(...body);
  document.getElementById('confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), {once: true});
  });
}
