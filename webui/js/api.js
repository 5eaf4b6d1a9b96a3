// The daemon's JSON API as the pages use it. The token lives in
// sessionStorage (gone with the tab); a 401 from any call logs out.

const tokenKey = 'paradrop.token';

export const session = {
  token: () => sessionStorage.getItem(tokenKey),
  save: (token) => { whoami = null; sessionStorage.setItem(tokenKey, token); },
  clear: () => { whoami = null; sessionStorage.removeItem(tokenKey); },
};

// whoami is who the token is, as /api/v1/info says: {actor, operator},
// with the gateway's LAN address (lanAddr, '' for none) where chutes'
// pages are. Asked once per login, so that pages never call what a
// developer may not.
let whoami = null;
export async function identity(signal) {
  if (!whoami) {
    const {actor = 'operator', lan_addr: lanAddr = ''} = await getJSON('/api/v1/info', {signal});
    whoami = {actor, operator: actor === 'operator', lanAddr};
  }
  return whoami;
}

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// onUnauthorized is called after a 401; main.js sends the operator to login.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

async function errorOf(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body.error) message = body.error;
  } catch { /* not JSON: keep the status line */ }
  return new APIError(resp.status, message);
}

export async function request(method, path, {body, signal, token = session.token()} = {}) {
  const headers = {Authorization: `Bearer ${token}`};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(path, {
    method, headers, signal, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401) {
      session.clear();
      onUnauthorized();
    }
    throw err;
  }
  return resp;
}

export async function getJSON(path, options) {
  return (await request('GET', path, options)).json();
}

export async function sendJSON(method, path, body) {
  return (await request(method, path, {body})).json();
}

export const chutePath = (name, rest = '') => `/api/v1/chutes/${encodeURIComponent(name)}${rest}`;

// checkToken validates a token (the operator's or a developer's) before keeping it.
export async function checkToken(token) {
  const resp = await fetch('/api/v1/info', {headers: {Authorization: `Bearer ${token}`}});
  if (!resp.ok) throw await errorOf(resp);
}

// loginWithPassword trades the operator password for a session token.
export async function loginWithPassword(password) {
  const resp = await fetch('/api/v1/login', {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({password}),
  });
  if (!resp.ok) throw await errorOf(resp);
  return (await resp.json()).token;
}

// upload sends a package file as the raw request body or, with its
// detached minisign signature, as a multipart form (the "signature" part
// first, then the "package"). XMLHttpRequest rather than fetch, because
// only it reports upload progress.
export function upload(method, path, file, onProgress, signature = null) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.setRequestHeader('Authorization', `Bearer ${session.token()}`);
    let body = file;
    if (signature) {
      body = new FormData();
      body.append('signature', signature);
      body.append('package', file);
    } else {
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    }
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) onProgress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr.response);
      if (xhr.status === 401) { session.clear(); onUnauthorized(); }
      reject(new APIError(xhr.status, xhr.response?.error || `${xhr.status} ${xhr.statusText}`));
    });
    xhr.addEventListener('error', () => reject(new APIError(0, 'upload failed: the daemon did not answer')));
    xhr.send(body);
  });
}

// followLogs streams a chute's log into onText until signal aborts it or
// the daemon ends the stream.
export async function followLogs(name, onText, signal) {
  const resp = await request('GET', chutePath(name, '/logs?tail=200&follow=1'), {signal});
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    onText(value);
  }
}
