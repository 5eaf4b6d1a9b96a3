// Login: the operator's or a developer's token, or the operator password for
// a session token.

import {checkToken, loginWithPassword, session} from './api.js';
import {h} from './dom.js';

export function loginPage(view, onLoggedIn) {
  const error = h('p', {class: 'error', role: 'alert', id: 'login-error'});
  const attempt = async (form, getToken) => {
    error.textContent = '';
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      session.save(await getToken());
      onLoggedIn();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  };

  const password = h('input', {type: 'password', id: 'password', autocomplete: 'current-password', required: true});
  const passwordForm = h('form', {id: 'password-login'},
    h('label', {for: 'password'}, 'Operator password'),
    password,
    h('p', {class: 'hint'}, 'Set with: paradrop password. Gives a session of 12 hours.'),
    h('div', {class: 'buttons'}, h('button', {type: 'submit', class: 'primary'}, 'Log in')));
  passwordForm.addEventListener('submit', (event) => {
    event.preventDefault();
    attempt(passwordForm, () => loginWithPassword(password.value));
  });

  const token = h('input', {type: 'password', id: 'token', autocomplete: 'off', required: true, spellcheck: 'false'});
  const tokenForm = h('form', {id: 'token-login'},
    h('label', {for: 'token'}, 'Token'),
    token,
    h('p', {class: 'hint'}, 'The operator’s (operator.token in the daemon’s data directory), or a developer’s.'),
    h('div', {class: 'buttons'}, h('button', {type: 'submit'}, 'Log in with the token')));
  tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = token.value.trim();
    attempt(tokenForm, async () => { await checkToken(value); return value; });
  });

  view.replaceChildren(h('section', {class: 'card login'}, h('h1', {}, 'Log in'), error, passwordForm, tokenForm));
  password.focus();
}
