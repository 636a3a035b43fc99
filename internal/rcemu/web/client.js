// rcemu web client: behaves like Rocket.Chat's web client for iframe
// authentication (rocketchat-protocol.md §1.2–1.7) and iframe integration
// (§3). Logins go through /_emu/ddp-login, the stand-in for Meteor's DDP
// "login" method; the REST /api/v1/login (rate limited) is never used.
'use strict';
(() => {
  const LOGIN_TOKEN_KEY = 'Meteor.loginToken';
  const USER_ID_KEY = 'Meteor.userId';
  const EXPIRES_KEY = 'Meteor.loginTokenExpires';

  // Test log: received messages, login errors, API URL calls.
  const emu = (window.__rcemu = { events: [], apiCalls: 0, ready: false, profile: '', settings: {} });
  const clone = (v) => {
    try { return v === undefined ? undefined : JSON.parse(JSON.stringify(v)); } catch (_) { return String(v); }
  };
  const record = (type, detail) => { emu.events.push(Object.assign({ type, at: Date.now() }, detail || {})); };

  // Meteor keeps the login token in localStorage; fall back to memory when
  // storage is blocked (third-party storage in a cross-site iframe).
  const memory = {};
  const storage = {
    get(k) { try { return window.localStorage.getItem(k); } catch (_) { return k in memory ? memory[k] : null; } },
    set(k, v) { try { window.localStorage.setItem(k, v); } catch (_) { memory[k] = v; } },
    remove(k) { try { window.localStorage.removeItem(k); } catch (_) { /* memory only */ } delete memory[k]; },
  };

  const $ = (id) => document.getElementById(id);
  let settings = {};
  let profile = '8.x';
  let user = null; // {id, username, token}
  let status = 'loading';
  let iframeWanted = false; // RC's iframeLoginUrl state
  let loggedInState = null; // last Custom_Script_Logged_In/Out fired

  const truthy = (v) => v === true || v === 'true';

  function setStatus(s) {
    status = s;
    $('rc-status').textContent = s;
    $('rc-username').textContent = user ? user.username : '';
    $('rc-user').hidden = !user;
    $('rc-login-form').hidden = s !== 'logged-out';
    $('rc-home').hidden = s !== 'logged-in';
    $('rc-iframe-box').hidden = s !== 'iframe';
  }

  // §1.2: all four settings must be set.
  function iframeEnabled() {
    return truthy(settings.Accounts_iframe_enabled) && !!settings.Accounts_iframe_url &&
      !!settings.Accounts_Iframe_api_url && !!settings.Accounts_Iframe_api_method;
  }

  // §3.2 fireGlobalEvent.
  function fireGlobalEvent(eventName, data) {
    window.dispatchEvent(new CustomEvent(eventName, { detail: data }));
    if (!truthy(settings.Iframe_Integration_send_enable)) return;
    const target = settings.Iframe_Integration_send_target_origin == null ? '*' : String(settings.Iframe_Integration_send_target_origin);
    try {
      window.parent.postMessage({ eventName, data }, target);
      record('sent', { eventName, data: clone(data), targetOrigin: target });
    } catch (err) {
      record('send-error', { eventName, error: String(err) });
    }
  }

  function loginStateChanged(loggedIn) {
    if (loggedInState === loggedIn) return;
    loggedInState = loggedIn;
    fireGlobalEvent(loggedIn ? 'Custom_Script_Logged_In' : 'Custom_Script_Logged_Out');
  }

  // Not logged in and nothing in flight: the login page or the iframe.
  function settle() {
    if (user) return;
    setStatus(iframeWanted ? 'iframe' : 'logged-out');
    loginStateChanged(false);
  }

  // §1.5: the IFrame URL replaces the login page.
  function iframeUrl() {
    let url = String(settings.Accounts_iframe_url);
    if (navigator.userAgent.indexOf('Electron') !== -1) url += (url.indexOf('?') !== -1 ? '&' : '?') + 'client=electron';
    return url;
  }

  function showIframe() {
    iframeWanted = true;
    if (user) return;
    if (!$('rc-login-iframe')) {
      const frame = document.createElement('iframe');
      frame.id = 'rc-login-iframe';
      frame.title = 'Login';
      frame.src = iframeUrl();
      frame.style.height = '100%';
      frame.style.width = '100%';
      $('rc-iframe-box').appendChild(frame);
      record('iframe-shown', { src: frame.src });
    }
    settle();
  }

  function removeIframe() {
    iframeWanted = false;
    const frame = $('rc-login-iframe');
    if (frame) frame.remove();
  }

  // Meteor's login method over DDP (stand-in endpoint).
  async function ddpLogin(args) {
    const res = await fetch('/_emu/ddp-login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(args),
    });
    const body = await res.json();
    if (!res.ok || body.error !== undefined) {
      const err = new Error(body.message || 'Login failed');
      err.meteor = body;
      throw err;
    }
    return body;
  }

  function onLoggedIn(result) {
    storage.set(LOGIN_TOKEN_KEY, result.token);
    storage.set(USER_ID_KEY, result.id);
    storage.set(EXPIRES_KEY, result.tokenExpires);
    user = { id: result.id, username: result.username, token: result.token };
    removeIframe();
    $('rc-error').textContent = '';
    $('rc-user-status').textContent = 'online';
    setStatus('logged-in');
    record('login', { loginType: result.type, userId: result.id, username: result.username });
    loginStateChanged(true);
    fireGlobalEvent('unread-changed', '');
    openRoomFromLocation();
  }

  // Accounts.callLoginMethod: cb(error) on failure, cb() on success.
  async function loginWith(args, cb) {
    let result;
    try {
      result = await ddpLogin(args);
    } catch (err) {
      record('login-failed', { message: err.message });
      if (cb) cb(err);
      return false;
    }
    onLoggedIn(result);
    if (cb) cb();
    return true;
  }

  // useIframe's loginWithToken (§1.4): 'loginToken' → resume login,
  // 'token' → iframe-token login. 6.x: loginToken wins; 7.x/8.x run both.
  // Returns whether a login was started. Throws (like `in`) for primitives.
  function loginWithToken(tokenData, cb) {
    if (typeof tokenData === 'string') tokenData = { token: tokenData };
    const hasLoginToken = 'loginToken' in tokenData;
    const hasToken = 'token' in tokenData;
    if (hasLoginToken) loginWith({ resume: tokenData.loginToken }, cb);
    if (hasToken && !(hasLoginToken && profile === '6.x')) loginWith({ iframe: true, token: tokenData.token }, cb);
    return hasLoginToken || hasToken;
  }

  // tryLogin (§1.3, §1.4): call the API URL with the browser's cookies.
  function tryLogin(cb) {
    if (!iframeEnabled()) return;
    emu.apiCalls++;
    const url = String(settings.Accounts_Iframe_api_url);
    const init = { method: String(settings.Accounts_Iframe_api_method), credentials: 'include' };
    // ≈6.2 → mid-7.x send Content-Type (a CORS preflight); 8.x: headers undefined.
    init.headers = profile === '8.x' ? undefined : { 'Content-Type': 'application/json' };
    record('api-call', { url, method: init.method });
    if (!user && status !== 'iframe') setStatus('loading');
    const fail = (err) => {
      showIframe();
      if (cb) cb(err);
    };
    fetch(url, init).then(async (res) => {
      record('api-response', { status: res.status });
      if (!res.ok || res.status !== 200) {
        fail(new Error());
        return;
      }
      let started;
      try {
        const body = await res.json();
        started = loginWithToken(body, (err) => {
          if (err) showIframe(); // PR #36919: a failed token login shows the iframe
          if (cb) cb(err);
        });
      } catch (err) {
        record('api-invalid', { message: err.message });
        fail(err);
        return;
      }
      if (!started) {
        record('api-no-token', {});
        settle(); // §1.4: 200 without a token does nothing
      }
    }, (err) => {
      record('api-error', { message: String(err && err.message) });
      fail(err);
    });
  }

  function unstoreLoginToken() {
    const had = !!storage.get(LOGIN_TOKEN_KEY);
    storage.remove(LOGIN_TOKEN_KEY);
    storage.remove(USER_ID_KEY);
    storage.remove(EXPIRES_KEY);
    // §1.2 (2): removing the stored token triggers tryLogin.
    if (had) tryLogin();
  }

  function makeClientLoggedOut() {
    user = null;
    settle();
    unstoreLoginToken();
  }

  // Meteor.logout: the server drops the token, then the client unstores it
  // (which calls the API URL again, §1.7).
  async function logout() {
    const token = storage.get(LOGIN_TOKEN_KEY) || (user && user.token);
    record('logout', {});
    try {
      await fetch('/_emu/ddp-logout', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }),
      });
    } catch (_) { /* offline: still log out locally */ }
    makeClientLoggedOut();
  }

  function openRoomFromLocation() {
    const m = /^\/(channel|group|direct)\/([^/?#]+)/.exec(location.pathname);
    $('rc-room-title').textContent = m ? '#' + decodeURIComponent(m[2]) : 'Home';
    if (!user || !m) return;
    const name = decodeURIComponent(m[2]);
    const t = { channel: 'c', group: 'p', direct: 'd' }[m[1]];
    fireGlobalEvent('room-opened', { _id: name === 'general' ? 'GENERAL' : name, name, fname: name, t });
  }

  function navigate(path) {
    let url;
    try { url = new URL(path, document.baseURI); } catch (_) { console.error('Invalid path', path); return; }
    const search = new URLSearchParams(location.search);
    url.searchParams.forEach((v, k) => search.set(k, v));
    const q = search.toString();
    history.pushState(null, '', url.pathname + (q ? '?' + q : '') + url.hash);
    record('navigate', { path: location.pathname + location.search });
    openRoomFromLocation();
  }

  async function setUserStatus(s) {
    if (!user) return;
    const res = await fetch('/_emu/ddp-set-status', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: user.token, status: s }),
    });
    if (!res.ok) {
      console.error('set-user-status failed', s);
      return;
    }
    $('rc-user-status').textContent = s;
    if (profile !== '6.x') fireGlobalEvent('status-changed', s);
  }

  // §3.1 commands.
  const commands = {
    go(data) {
      if (typeof data.path !== 'string' || data.path.trim() === '') { console.error('`path` not defined'); return; }
      navigate(data.path);
    },
    'login-with-token'(data) {
      if (typeof data.token !== 'string') return;
      loginWith({ resume: data.token }, (err) => {
        console.log('Iframe command [login-with-token]: result', err ? err.message : 'ok');
      });
    },
    logout() { logout().then(() => navigate('/home')); },
    'set-user-status'(data) { setUserStatus(data.status); },
  };

  function onCommand(e) {
    if (!truthy(settings.Iframe_Integration_receive_enable)) return;
    const data = e.data;
    if (typeof data !== 'object' || data === null || typeof data.externalCommand !== 'string') return;
    const allowed = settings.Iframe_Integration_receive_origin == null ? '*' : String(settings.Iframe_Integration_receive_origin);
    if (allowed !== '*' && allowed.split(',').indexOf(e.origin) === -1) {
      console.error('Origin not allowed', e.origin);
      record('command-rejected', { command: data.externalCommand, origin: e.origin, reason: 'origin' });
      return;
    }
    if (!Object.prototype.hasOwnProperty.call(commands, data.externalCommand)) {
      console.error('Command not allowed', data.externalCommand);
      record('command-rejected', { command: data.externalCommand, origin: e.origin, reason: 'command' });
      return;
    }
    record('command', { command: data.externalCommand, origin: e.origin });
    commands[data.externalCommand](data, e);
  }

  // §1.6 login channel: no origin check.
  function onLoginMessage(e) {
    const data = e.data;
    if (!(typeof data === 'function' || (typeof data === 'object' && data !== null))) return;
    const reply = (err) => {
      if (!err) return;
      const response = err.message;
      record('login-error', { response, origin: e.origin });
      try {
        if (e.source) e.source.postMessage({ event: 'login-error', response }, e.origin);
      } catch (x) {
        record('reply-error', { error: String(x) });
      }
    };
    switch (data.event) {
      case 'try-iframe-login':
        tryLogin(reply);
        break;
      case 'login-with-token':
        loginWithToken(data, reply);
        break;
    }
  }

  $('rc-logout').addEventListener('click', () => {
    setStatus('loading');
    logout();
  });

  $('rc-login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const who = $('rc-login-user').value;
    const query = who.indexOf('@') !== -1 ? { email: who } : { username: who };
    loginWith({ user: query, password: $('rc-login-password').value }, (err) => {
      $('rc-error').textContent = err ? err.message : '';
    });
  });

  async function start() {
    try {
      const res = await fetch('/_emu/public-settings', { credentials: 'same-origin' });
      const body = await res.json();
      settings = body.settings || {};
      profile = body.profile || '8.x';
      $('rc-version').textContent = body.version || '';
    } catch (err) {
      record('settings-error', { message: String(err) });
    }
    emu.profile = profile;
    emu.settings = settings;
    window.addEventListener('message', (e) => record('message', { origin: e.origin, data: clone(e.data) }));
    if (iframeEnabled()) window.addEventListener('message', onLoginMessage);
    window.addEventListener('message', onCommand);
    window.addEventListener('popstate', openRoomFromLocation);
    emu.ready = true;
    fireGlobalEvent('startup', true);
    const token = storage.get(LOGIN_TOKEN_KEY);
    if (token) {
      // Meteor's auto-login with the stored token; on failure the client
      // is logged out, which unstores the token and calls tryLogin.
      if (!(await loginWith({ resume: token }))) makeClientLoggedOut();
    } else if (iframeEnabled()) {
      tryLogin();
    } else {
      settle();
    }
  }

  start();
})();
