// The single-page app: a router over history.pushState, so that every page
// has a URL the daemon answers with index.html (deep links, reloads).

import {identity, session, setUnauthorizedHandler} from './api.js';
import {chutePage} from './chute.js';
import {dashboard} from './dashboard.js';
import {developersPage} from './developers.js';
import {installPage} from './install.js';
import {loginPage} from './login.js';
import {h} from './dom.js';

const view = document.getElementById('view');
const logout = document.getElementById('logout');
const developersLink = document.getElementById('nav-developers');
const whoLabel = document.getElementById('who');
let leave = new AbortController(); // aborted when the page changes: stops polls and streams

async function route() {
  leave.abort();
  leave = new AbortController();
  const signal = leave.signal;
  const path = location.pathname;
  logout.hidden = !session.token();
  developersLink.hidden = true;
  whoLabel.hidden = true;
  if (!session.token()) {
    document.title = 'Log in · ParaDrop gateway';
    return loginPage(view, () => navigate(path === '/login' ? '/' : path, {replace: true}));
  }
  let who;
  try {
    who = await identity(signal);
  } catch (err) {
    if (signal.aborted || !session.token()) return; // left, or a 401 sent to login
    view.replaceChildren(h('p', {class: 'error', role: 'alert'}, `The gateway: ${err.message}`));
    return;
  }
  if (signal.aborted) return;
  developersLink.hidden = !who.operator;
  whoLabel.textContent = who.operator ? 'Operator' : who.actor.replace(/^developer:/, 'Developer ');
  whoLabel.hidden = false;
  const chute = path.match(/^\/chutes\/([^/]+)$/);
  if (chute) {
    const name = decodeURIComponent(chute[1]);
    document.title = `${name} · ParaDrop gateway`;
    chutePage(view, signal, name, who);
  } else if (path === '/developers' && who.operator) {
    document.title = 'Developers · ParaDrop gateway';
    developersPage(view, signal);
  } else if (path === '/install') {
    document.title = 'Install · ParaDrop gateway';
    installPage(view);
  } else {
    document.title = 'Dashboard · ParaDrop gateway';
    dashboard(view, signal, who);
  }
}

function navigate(path, {replace = false} = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
  view.focus(); // screen readers start at the new page
}

// Same-origin links navigate within the app.
document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href]');
  if (!link || link.origin !== location.origin || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.pathname);
});
window.addEventListener('popstate', route);
logout.addEventListener('click', () => { session.clear(); navigate('/'); });
setUnauthorizedHandler(() => { if (!view.querySelector('.login')) route(); });

// uPlot is a deferred classic script; modules run after it.
route();
