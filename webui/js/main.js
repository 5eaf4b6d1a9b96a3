// The single-page app: a router over history.pushState, so that every page
// has a URL the daemon answers with index.html (deep links, reloads).

import {session, setUnauthorizedHandler} from './api.js';
import {chutePage} from './chute.js';
import {dashboard} from './dashboard.js';
import {installPage} from './install.js';
import {loginPage} from './login.js';

const view = document.getElementById('view');
const logout = document.getElementById('logout');
let leave = new AbortController(); // aborted when the page changes: stops polls and streams

function route() {
  leave.abort();
  leave = new AbortController();
  const path = location.pathname;
  logout.hidden = !session.token();
  if (!session.token()) {
    document.title = 'Log in · ParaDrop gateway';
    return loginPage(view, () => navigate(path === '/login' ? '/' : path, {replace: true}));
  }
  const chute = path.match(/^\/chutes\/([^/]+)$/);
  if (chute) {
    const name = decodeURIComponent(chute[1]);
    document.title = `${name} · ParaDrop gateway`;
    chutePage(view, leave.signal, name);
  } else if (path === '/install') {
    document.title = 'Install · ParaDrop gateway';
    installPage(view);
  } else {
    document.title = 'Dashboard · ParaDrop gateway';
    dashboard(view, leave.signal);
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
