// rcemu web client: behaves like Rocket.Chat's web client for iframe
// authentication (rocketchat-protocol.md §1) and iframe integration (§3),
// per client generation (rocketchat-2026.md §1.1), bad habits included.
// Logins go through /_emu/ddp-login, the stand-in for Meteor's DDP "login"
// method; the REST /api/v1/login (rate limited) is never used.
//
// Sources, cited below by these short names (repository RocketChat/Rocket.Chat
// unless stated otherwise):
//   [X-class]   apps/meteor/app/ui-utils/client/lib/IframeLogin.ts @15e6ef474fa42cb877c2543f17c3579274550a31
//               (IframeLogin.js @5e19bed1f17a37505b243e33151961678f1e0f03 before it)
//   [X-client]  apps/meteor/app/iframe-login/client/iframe_client.ts @1b09b1f8347e4fb7d72399bba65b1fcd80386126
//               (iframe_client.js @050a131b2b0a1fb66aa96a6753f93f9473e2ccf8)
//   [X-hook]    apps/meteor/client/views/root/MainLayout/useIframeLogin.ts @9417b655bbded164a6b29f9b87d58fa0d0cc7689
//               (renders the exported instance's state) + LoginPage.tsx @c6b599bad107333880ca6dbc6a58ddaca618f81d
//   [F1]        apps/meteor/client/views/root/MainLayout/useIframeLogin.ts @1384c562991ed85c0232da0adc6720c68eb76d41
//   [F2]        apps/meteor/client/hooks/iframe/useIframe.ts @8320a447b47382aae069df8e498ee50be0a40d5c (refactor
//               PR #36022), its LoginPage.tsx (useIframe() for the rendered state) and AppLayout.tsx (mounts
//               hooks/iframe/useIframeLoginListener, shaped like
//               apps/meteor/client/views/root/hooks/useIframeLoginListener.ts @b586939851fb5bfa5416c22d83b32fe859dfd942);
//               PR #36820 (7.9.4, in 7.10) made the login page's own useIframe() call the API URL
//   [L]         apps/meteor/client/views/root/hooks/useIframe.ts @366449569490ba3f88fa7870a87d3f4b7ff92c47
//               (PRs #36866, #36919, #37021) + useIframeLoginListener.ts @46a90ce7a4890db2e8caa2b54d4f62552d2d544d
//               + AppLayout.tsx (useIframeLoginListener, useStartupEvent, useIframeCommands)
//   [cmd-old]   apps/meteor/client/startup/iframeCommands.ts @7b75dd7eee367b31413ab2b3ae601cb588835ad0
//   [cmd-L]     apps/meteor/client/views/root/hooks/useIframeCommands.ts @03de61f886ab7ad2c85b998b8bb5201778938be0
//   [event-old] apps/meteor/client/lib/utils/fireGlobalEvent.ts @9a59ff41e3c30b37c16025c5cdbc6d8b3b2bd8d0
//               (Tracker: waits for the settings) and Meteor.startup(() => fireGlobalEvent('startup', true))
//               in apps/meteor/client/startup/startup.ts
//   [event-79]  issues #36657 and #36881: from 7.9.0 fireGlobalEvent drops events fired before the settings
//               arrive, and `startup` is never seen (still so in 7.10)
//   [event-L]   apps/meteor/client/views/root/hooks/useStartupEvent.ts @eda11f3b9241764c258ce915247cbabc8877a686
//               + apps/meteor/client/hooks/useFireGlobalEvent.ts @a42b439cc4e0ac5b09984bd2706ff64244f4b275 (PR #37718)
//   [script]    apps/meteor/client/views/root/MainLayout/useCustomScript.ts @c6b599bad107333880ca6dbc6a58ddaca618f81d
//
// Around that, a small chat so that the page looks like one: a room list,
// the open channel's messages and a message box, through the emulator's own
// stand-ins for Meteor methods (chat.go cites the Rocket.Chat source of
// their behaviour). The chat never changes the login state.
'use strict';
(() => {
  const LOGIN_TOKEN_KEY = 'Meteor.loginToken';
  const USER_ID_KEY = 'Meteor.userId';
  const EXPIRES_KEY = 'Meteor.loginTokenExpires';

  // Test log: received messages, login errors, API URL calls.
  const emu = (window.__rcemu = { events: [], apiCalls: 0, ready: false, profile: '', client: '', settings: {} });
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
  let settingsLoaded = false;
  let gen = 'l'; // client generation: x, f1, f2, l (GET /_emu/public-settings "client")
  let uid = null; // Meteor.userId(): set from storage before the resume login completes
  let user = null; // {id, username, token} once a login completed
  let busy = 0; // API URL calls and logins in flight: the page shows "loading" meanwhile
  let loggingOut = false; // Meteor.loggingOut()
  let lastUid; // last uid Custom_Script_Logged_In/Out was fired for

  const truthy = (v) => v === true || v === 'true';

  // All four settings must be set (spec §1.2).
  function iframeEnabled() {
    return truthy(settings.Accounts_iframe_enabled) && !!settings.Accounts_iframe_url &&
      !!settings.Accounts_Iframe_api_url && !!settings.Accounts_Iframe_api_method;
  }

  // ---- events to the parent window (spec §3.2) ----

  function post(eventName, data) {
    if (!truthy(settings.Iframe_Integration_send_enable)) return;
    const target = settings.Iframe_Integration_send_target_origin == null ? '*' : String(settings.Iframe_Integration_send_target_origin);
    try {
      window.parent.postMessage({ eventName, data }, target);
      record('sent', { eventName, data: clone(data), targetOrigin: target });
    } catch (err) {
      record('send-error', { eventName, error: String(err) });
    }
  }

  // fireGlobalEvent. Before the settings arrive: x and f1 wait for them
  // ([event-old]: a Tracker autorun until Iframe_Integration_send_enable is
  // defined), f2 and l drop the event ([event-79]).
  const deferred = [];
  function fireGlobalEvent(eventName, data) {
    window.dispatchEvent(new CustomEvent(eventName, { detail: data }));
    if (settingsLoaded) { post(eventName, data); return; }
    if (gen === 'x' || gen === 'f1') { deferred.push([eventName, data]); return; }
    record('event-dropped', { eventName });
  }

  // [script]: Custom_Script_Logged_In/Out follow Meteor.userId(), including
  // the first render (Logged_Out on a logged-out start).
  let scriptMounted = false; // l: useCustomScript mounts with AppLayout (see settingsArrived)
  function uidChanged() {
    if (gen === 'l' && !scriptMounted) return;
    if (lastUid === uid) return;
    lastUid = uid;
    fireGlobalEvent(uid ? 'Custom_Script_Logged_In' : 'Custom_Script_Logged_Out');
  }

  // ---- what the person sees ----

  // The login page shows the IFrame URL when its iframe-login state holds
  // one, else Rocket.Chat's own (stock) login page: [X-hook], [F1],
  // [F2]/[L] LoginPage. While an API URL call or a login is in flight the
  // emulator shows "loading" (Rocket.Chat shows its login page meanwhile)
  // so that tests see only settled states; a shown IFrame URL stays while
  // logins run.
  let loginPage = null; // the mounted login page's iframe-login instance (null: not mounted)
  let renderedInstance = null; // whose iframeUrl the login page renders

  function render() {
    let s;
    if (loggingOut) s = 'loading';
    else if (user) s = 'logged-in';
    else if (renderedInstance && renderedInstance.iframeUrl) s = 'iframe';
    else if (busy > 0 || uid || !settingsLoaded) s = 'loading';
    else s = 'logged-out';
    $('rc-status').textContent = s;
    $('rc-username').textContent = user ? user.username : '';
    $('rc-workspace').textContent = settings.Site_Name ? String(settings.Site_Name) : 'Rocket.Chat';
    $('rc-user').hidden = !user;
    $('rc-login-form').hidden = s !== 'logged-out';
    $('rc-home').hidden = s !== 'logged-in';
    $('rc-iframe-box').hidden = s !== 'iframe';
    const frame = $('rc-login-iframe');
    if (s === 'iframe') {
      const src = renderedInstance.iframeUrl;
      if (!frame || frame.getAttribute('src') !== src) {
        if (frame) frame.remove();
        const f = document.createElement('iframe');
        f.id = 'rc-login-iframe';
        f.title = 'Login';
        f.src = src;
        f.style.height = '100%';
        f.style.width = '100%';
        $('rc-iframe-box').appendChild(f);
        record('iframe-shown', { src });
      }
    } else if (frame) {
      frame.remove();
    }
  }

  const begin = () => { busy++; render(); };
  const end = () => { busy--; render(); };

  // The IFrame URL with client=electron in the desktop app: every
  // generation checks navigator.userAgent for "Electron" ([X-class],
  // [F1], [F2], [L]; the desktop app keeps Electron's user agent,
  // RocketChat/Rocket.Chat.Electron src/ui/main/serverView/index.ts
  // @713204c544d21b7c9c22f17d29647d30a2e90cdb).
  function iframeUrl() {
    let url = String(settings.Accounts_iframe_url);
    const separator = url.indexOf('?') > -1 ? '&' : '?';
    if (navigator.userAgent.indexOf('Electron') > -1) url += separator + 'client=electron';
    return url;
  }

  // ---- Meteor accounts ----

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

  function makeClientLoggedIn(result) {
    storage.set(LOGIN_TOKEN_KEY, result.token);
    storage.set(USER_ID_KEY, result.id);
    storage.set(EXPIRES_KEY, result.tokenExpires);
    user = { id: result.id, username: result.username, token: result.token };
    uid = result.id;
    unmountLoginPage();
    $('rc-error').textContent = '';
    $('rc-user-status').textContent = 'online';
    record('login', { loginType: result.type, userId: result.id, username: result.username });
    uidChanged();
    fireGlobalEvent('unread-changed', '');
    openRoomFromLocation();
    chatStart();
    render();
  }

  // Accounts.callLoginMethod: cb(error) on failure, cb() on success. A
  // failed login leaves the current session alone.
  function callLoginMethod(args, cb) {
    begin();
    ddpLogin(args).then((result) => {
      makeClientLoggedIn(result);
      if (cb) cb();
    }, (err) => {
      record('login-failed', { message: err.message });
      if (cb) cb(err);
    }).finally(end);
  }
  const loginWithResume = (token, cb) => callLoginMethod({ resume: token }, cb);
  const loginWithIframeToken = (token, cb) => callLoginMethod({ iframe: true, token }, cb);

  // Meteor's makeClientLoggedOut: forget the user, unstore the token.
  function makeClientLoggedOut() {
    user = null;
    uid = null;
    chatStop();
    uidChanged();
    unstoreLoginToken();
    mountLoginPage();
    render();
  }

  // Accounts._unstoreLoginToken, with each generation's hook on it.
  function unstoreLoginToken() {
    const had = storage.get(LOGIN_TOKEN_KEY) !== null;
    storage.remove(LOGIN_TOKEN_KEY);
    storage.remove(USER_ID_KEY);
    storage.remove(EXPIRES_KEY);
    switch (gen) {
      case 'x':
        // [X-client] patches Accounts._unstoreLoginToken to call tryLogin on
        // its OWN IframeLogin instance, whose state no page renders: after a
        // logout the login page keeps the exported instance's state, so the
        // person sees the stock login page unless this page load had shown
        // the IFrame URL (issue #30046, 5.4.3).
        instances.xClient.tryLogin();
        break;
      case 'f2':
        // [F2] the listener's useUnstoreLoginToken(tryLogin).
        instances.listener.tryLogin();
        break;
      case 'l':
        // [L] userStorage.on('change') with no token left → tryLogin.
        if (had) instances.listener.tryLogin();
        break;
      // f1: the login page registers unstoreLoginToken(tryLogin) only while
      // it is mounted, i.e. when nobody is logged in: nothing to call here.
    }
  }

  // Meteor.logout: the server drops the token, then the client is logged
  // out (spec §1.7).
  async function logout() {
    const token = storage.get(LOGIN_TOKEN_KEY) || (user && user.token);
    record('logout', {});
    loggingOut = true;
    begin();
    try {
      await fetch('/_emu/ddp-logout', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }),
      });
    } catch (_) { /* offline: still log out locally */ }
    loggingOut = false;
    makeClientLoggedOut();
    end();
  }

  // ---- iframe login (spec §1.3–1.6), one object per hook/class instance ----

  // XHR as Meteor's HTTP.call does it ([X-class]): no headers, no body,
  // withCredentials; result.data only for a JSON Content-Type; error for a
  // status ≥ 400 ("failed [401] …") or a network error ("Connection lost").
  function meteorHTTPCall(method, url, cb) {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url, true);
    xhr.withCredentials = true;
    xhr.onreadystatechange = () => {
      if (xhr.readyState !== 4) return;
      if (!xhr.status) { cb(new Error('Connection lost'), undefined); return; }
      const result = { statusCode: xhr.status, content: xhr.responseText, data: null };
      const type = (xhr.getResponseHeader('Content-Type') || '').split(';')[0].trim();
      if (['application/json', 'text/javascript', 'application/javascript', 'application/x-javascript'].indexOf(type) !== -1) {
        try { result.data = JSON.parse(xhr.responseText); } catch (_) { /* data stays null */ }
      }
      let error = null;
      if (xhr.status >= 400) {
        const content = xhr.responseText.replace(/\n/g, ' ');
        error = new Error('failed [' + xhr.status + ']' + (content ? ' ' + content.slice(0, 500) : ''));
      }
      cb(error, result);
    };
    xhr.send();
  }

  function newInstance(name, rendered) {
    const inst = { name, iframeUrl: undefined, alive: true };
    const setIframeUrl = (url) => {
      if (!inst.alive) return; // setState on an unmounted component
      inst.iframeUrl = url;
      render();
    };

    // loginWithToken (spec §1.4) per generation.
    inst.loginWithToken = (tokenData, callback) => {
      if (gen === 'x' || gen === 'f1') {
        if (!iframeEnabled()) return; // [X-class], [F1]: if (!enabled) return
      }
      if (typeof tokenData === 'string') tokenData = { token: tokenData };
      if ('loginToken' in tokenData) { // throws for a primitive, like `in`
        if (gen === 'f2') {
          // [F2]: tokenLogin(tokenData.loginToken) without the callback: a
          // refused token never shows the IFrame URL (fixed by PR #36919).
          loginWithResume(tokenData.loginToken);
        } else {
          loginWithResume(tokenData.loginToken, callback);
        }
        // x, f1: `return Meteor.loginWithToken(…)`: loginToken wins.
        if (gen === 'x' || gen === 'f1') return;
      }
      if (gen === 'f1' || gen === 'x' || 'token' in tokenData) {
        // x, f1: the iframe login runs for anything without loginToken
        // (token undefined fails); f2, l: only when 'token' is present.
        loginWithIframeToken(tokenData.token, callback);
      }
    };

    inst.tryLogin = (callback) => {
      if (!settingsLoaded || !iframeEnabled()) return;
      const url = iframeUrl();
      const apiUrl = String(settings.Accounts_Iframe_api_url);
      const method = String(settings.Accounts_Iframe_api_method);
      emu.apiCalls++;
      record('api-call', { url: apiUrl, method, instance: name });
      begin();
      if (gen === 'x') {
        // [X-class] tryLogin: any status; a truthy token or loginToken in
        // JSON logs in, anything else shows the IFrame URL.
        meteorHTTPCall(method, apiUrl, (error, result) => {
          record('api-response', { status: result ? result.statusCode : 0, instance: name });
          if (result && result.data && (result.data.token || result.data.loginToken)) {
            inst.loginWithToken(result.data, (err) => {
              setIframeUrl(err ? url : undefined);
              if (callback) callback(err, result);
            });
          } else {
            setIframeUrl(url);
            if (callback) callback(error, result);
          }
          end();
        });
        return;
      }
      const init = { method, credentials: 'include' };
      // [F1], [F2]: Content-Type: application/json (a CORS preflight even
      // for GET); [L]: headers undefined.
      init.headers = gen === 'l' ? undefined : { 'Content-Type': 'application/json' };
      const run = async () => {
        const result = await fetch(apiUrl, init);
        record('api-response', { status: result.status, instance: name });
        if (!result.ok || result.status !== 200) {
          setIframeUrl(url);
          if (callback) callback(new Error(), null);
          return;
        }
        if (gen === 'l') {
          const body = await result.json();
          inst.loginWithToken(body, (err) => {
            setIframeUrl(err ? url : undefined);
            if (callback) callback(err, body);
          });
          return;
        }
        // [F1], [F2]: `callback?.(error, await result.json())` reads the
        // body a second time, which throws after the state is set: the
        // caller's callback (a login-error reply) never runs.
        inst.loginWithToken(await result.json(), (err) => {
          setIframeUrl(err ? url : undefined);
          record('api-body-reread', { instance: name });
        });
      };
      run().catch((err) => {
        if (gen === 'l') {
          // [L] (PR #36866): a network or CORS error, bad JSON or a non-object
          // body shows the IFrame URL.
          setIframeUrl(url);
          if (callback) callback(err instanceof Error ? err : undefined, null);
          return;
        }
        // [F1], [F2]: no try/catch: an unhandled rejection; the login page
        // stays Rocket.Chat's own.
        record('api-unhandled', { message: String(err && err.message), instance: name });
      }).finally(end);
    };

    if (rendered) renderedInstance = inst;
    return inst;
  }

  const instances = {};

  // The login channel (spec §1.6): no origin check; replies only failures,
  // to e.source with e.origin.
  function loginChannel(inst) {
    return (e) => {
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
          inst.tryLogin(reply);
          break;
        case 'login-with-token':
          try { inst.loginWithToken(data, reply); } catch (err) { record('login-channel-error', { message: String(err) }); }
          break;
      }
    };
  }

  // The login page mounts when nobody is logged in: [F1] LoginPage with
  // useIframeLogin, [F2]/[L] LoginPage with its own useIframe() (state
  // starts empty on each mount). x renders the exported instance, which
  // lives as long as the page ([X-hook]).
  let loginPageListener = null;
  function mountLoginPage() {
    if (gen === 'x' || loginPage) return;
    if (gen === 'l' && !settingsLoaded) return; // mounts with AppLayout, below
    loginPage = newInstance('login-page', true);
    if (gen === 'f1') {
      // [F1]: the login channel listener lives in this hook.
      loginPageListener = loginChannel(loginPage);
      window.addEventListener('message', loginPageListener);
    }
    loginPageEffect();
  }

  // The login page's own call: [F1] useEffect when enabled; [F2] PR #36820's
  // call from useIframe; [L] useIframe's useEffect(() => tryLogin(), …).
  function loginPageEffect() {
    if (loginPage && settingsLoaded && iframeEnabled() && !loginPage.called) {
      loginPage.called = true;
      loginPage.tryLogin();
    }
  }

  function unmountLoginPage() {
    if (!loginPage) return;
    loginPage.alive = false;
    if (loginPageListener) window.removeEventListener('message', loginPageListener);
    loginPageListener = null;
    loginPage = null;
    if (gen !== 'x') renderedInstance = null;
  }

  // ---- the chat (chat.go: /_emu/ddp-me, -rooms, -load-history, -send-message) ----

  const chat = { me: null, rooms: null, rid: null, shown: '', timer: null, seq: 0 };

  // A Meteor method call through the emulator's stand-in, as the logged-in
  // user; rejects with the Meteor error's message.
  async function callMethod(name, args) {
    if (!user) throw new Error('not logged in');
    const res = await fetch('/_emu/ddp-' + name, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(Object.assign({ token: user.token }, args || {})),
    });
    const body = await res.json();
    if (!res.ok) throw new Error((body && body.message) || name + ' failed');
    return body;
  }

  function chatStart() {
    const who = user;
    Promise.all([callMethod('me'), callMethod('rooms')]).then(([me, rooms]) => {
      if (user !== who) return;
      chat.me = me;
      chat.rooms = rooms.rooms || [];
      renderMe();
      renderRooms();
      chatShowRoom();
    }, (err) => record('chat-error', { message: String(err.message) }));
  }

  function chatStop() {
    clearInterval(chat.timer);
    chat.timer = null;
    chat.me = null;
    chat.rooms = null;
    chat.rid = null;
    chat.shown = '';
    chat.seq++;
    $('rc-rooms').textContent = '';
    $('rc-messages').textContent = '';
    $('rc-me-name').textContent = '';
    $('rc-me-username').textContent = '';
    $('rc-me-avatar').textContent = '';
  }

  function renderMe() {
    const me = chat.me || {};
    const shown = me.name || me.username || '';
    $('rc-me-name').textContent = shown;
    $('rc-me-username').textContent = me.username || '';
    $('rc-me-avatar').textContent = shown ? shown.charAt(0).toUpperCase() : '?';
  }

  function renderRooms() {
    const list = $('rc-rooms');
    list.textContent = '';
    for (const room of chat.rooms || []) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.className = 'rc-room-link';
      // A private group lives under /group/ and shows a lock (Rocket.Chat's
      // hashtag-lock icon).
      a.href = (room.t === 'p' ? '/group/' : '/channel/') + encodeURIComponent(room.name);
      a.textContent = (room.t === 'p' ? '\u{1F512}' : '#') + room.name;
      a.dataset.rid = room._id;
      li.appendChild(a);
      list.appendChild(li);
    }
    markCurrentRoom();
  }

  function markCurrentRoom() {
    for (const a of document.querySelectorAll('#rc-sidebar .rc-room-link')) {
      const current = chat.rid ? a.dataset.rid === chat.rid : a.id === 'rc-nav-home';
      if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
  }

  // The room of the sidebar the location names (/channel/NAME or
  // /group/NAME), or null.
  function roomOfLocation() {
    const m = /^\/(channel|group)\/([^/?#]+)/.exec(location.pathname);
    const name = m ? decodeURIComponent(m[2]) : null;
    const t = m && m[1] === 'group' ? 'p' : 'c';
    return (name && chat.rooms && chat.rooms.find((r) => r.name === name && r.t === t)) || null;
  }

  // Shows the room the location names (or the home view) once the rooms
  // are known, and polls its messages every 2 s while it is open. A room
  // the user is not subscribed to is not in the sidebar: the home view.
  function chatShowRoom() {
    const room = roomOfLocation();
    const rid = room ? room._id : null;
    if (rid !== chat.rid) {
      chat.rid = rid;
      chat.shown = '';
      chat.seq++;
      $('rc-messages').textContent = '';
      clearInterval(chat.timer);
      chat.timer = rid ? setInterval(loadHistory, 2000) : null;
    }
    $('rc-room-topic').textContent = room && room.topic ? room.topic : '';
    $('rc-home-view').hidden = !!rid;
    $('rc-messages').hidden = !rid;
    $('rc-composer').hidden = !rid;
    $('rc-message-input').placeholder = room ? 'Message #' + room.name : 'Message';
    markCurrentRoom();
    if (rid) loadHistory();
  }

  function loadHistory() {
    const rid = chat.rid, seq = chat.seq;
    if (!user || !rid) return;
    callMethod('load-history', { rid, limit: 50 }).then((res) => {
      if (seq !== chat.seq || !res) return;
      renderMessages((res.messages || []).slice().reverse());
    }, (err) => {
      record('chat-error', { message: String(err.message) });
      // The token was revoked on the server: stop asking until the next login.
      if (seq === chat.seq && /\[error-invalid-user\]/.test(err.message)) { clearInterval(chat.timer); chat.timer = null; }
    });
  }

  function renderMessages(msgs) {
    const key = msgs.length + ':' + (msgs.length ? msgs[msgs.length - 1]._id : '');
    if (key === chat.shown) return;
    chat.shown = key;
    const list = $('rc-messages');
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.textContent = '';
    if (!msgs.length) {
      const li = document.createElement('li');
      li.className = 'rc-empty';
      li.textContent = 'No messages yet: say hello.';
      list.appendChild(li);
    }
    for (const msg of msgs) {
      const u = msg.u || {};
      const li = document.createElement('li');
      li.className = 'rc-msg';
      const avatar = document.createElement('span');
      avatar.className = 'rc-avatar';
      avatar.textContent = (u.name || u.username || '?').charAt(0).toUpperCase();
      const body = document.createElement('div');
      const head = document.createElement('div');
      head.className = 'rc-msg-head';
      const name = document.createElement('b');
      name.textContent = u.name || u.username || '';
      const handle = document.createElement('span');
      handle.className = 'rc-msg-user';
      handle.textContent = '@' + (u.username || '');
      const time = document.createElement('time');
      time.className = 'rc-msg-time';
      time.dateTime = msg.ts;
      const ts = new Date(msg.ts);
      time.textContent = isNaN(ts) ? '' : ts.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      head.append(name, ' ', handle, ' ', time);
      const text = document.createElement('div');
      text.className = 'rc-msg-text';
      text.textContent = msg.msg;
      body.append(head, text);
      li.append(avatar, body);
      list.appendChild(li);
    }
    if (atBottom || !list.dataset.scrolled) list.scrollTop = list.scrollHeight;
    list.dataset.scrolled = '1';
  }

  function sendMessage() {
    const input = $('rc-message-input');
    const msg = input.value;
    const rid = chat.rid;
    if (!rid || msg.trim() === '') return;
    $('rc-send').disabled = true;
    callMethod('send-message', { message: { rid, msg } }).then(() => {
      input.value = '';
      $('rc-send-error').textContent = '';
      delete $('rc-messages').dataset.scrolled;
      loadHistory();
    }, (err) => {
      $('rc-send-error').textContent = err.message;
    }).finally(() => { $('rc-send').disabled = false; input.focus(); });
  }

  // ---- host commands (spec §3.1) ----

  function openRoomFromLocation() {
    const m = /^\/(channel|group|direct)\/([^/?#]+)/.exec(location.pathname);
    $('rc-room-title').textContent = m ? '#' + decodeURIComponent(m[2]) : 'Home';
    chatShowRoom();
    if (!user || !m) return;
    const name = decodeURIComponent(m[2]);
    const t = { channel: 'c', group: 'p', direct: 'd' }[m[1]];
    const room = roomOfLocation();
    fireGlobalEvent('room-opened', { _id: room ? room._id : name === 'general' ? 'GENERAL' : name, name, fname: name, t });
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
    if (gen === 'f2' || gen === 'l') fireGlobalEvent('status-changed', s);
  }

  const commands = {
    go(data) {
      if (typeof data.path !== 'string' || data.path.trim() === '') { console.error('`path` not defined'); return; }
      navigate(data.path);
    },
    // [cmd-old], [cmd-L]: a resume token; the result only goes to the console.
    'login-with-token'(data) {
      if (typeof data.token !== 'string') return;
      loginWithResume(data.token, (err) => {
        console.log('Iframe command [login-with-token]: result', err ? err.message : 'ok');
      });
    },
    logout() { logout().then(() => navigate('/home')); },
    'set-user-status'(data) { setUserStatus(data.status); },
  };

  // The command listener checks Iframe_Integration_receive_enable and the
  // exact, untrimmed origin list. [cmd-old] (x, f1, f2) listens from the
  // start but reads the settings per message, so a command that arrives
  // before the settings is ignored; [cmd-L] (l) registers the listener in an
  // effect keyed on the settings. Either way a command is only heard once
  // the public settings have arrived, which on a first visit is after the
  // page's load event.
  function onCommand(e) {
    if (!settingsLoaded) {
      const d = e.data;
      if (d && typeof d === 'object' && typeof d.externalCommand === 'string') record('command-lost', { command: d.externalCommand, origin: e.origin });
      return;
    }
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

  // ---- start-up ----

  $('rc-logout').addEventListener('click', () => { logout(); });

  // The room list and the home link move within the page, as Rocket.Chat's
  // sidebar does.
  $('rc-sidebar').addEventListener('click', (ev) => {
    const a = ev.target.closest('a.rc-room-link');
    if (!a || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    navigate(a.getAttribute('href'));
  });
  $('rc-composer').addEventListener('submit', (ev) => { ev.preventDefault(); sendMessage(); });
  // Enter sends, Shift+Enter is a new line.
  $('rc-message-input').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); sendMessage(); }
  });

  $('rc-login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const who = $('rc-login-user').value;
    const query = who.indexOf('@') !== -1 ? { email: who } : { username: who };
    callLoginMethod({ user: query, password: $('rc-login-password').value }, (err) => {
      $('rc-error').textContent = err ? err.message : '';
    });
  });

  // The public settings arrive: every generation's settings-driven effects
  // run now.
  function settingsArrived() {
    settingsLoaded = true;
    emu.settings = settings;
    const enabled = iframeEnabled();
    switch (gen) {
      case 'x':
        // [X-class]: both instances' autoruns call the API URL once the
        // settings are complete, unless a login token is stored: two calls
        // at once on a logged-out load.
        if (enabled && storage.get(LOGIN_TOKEN_KEY) === null) {
          instances.exported.tryLogin();
          instances.xClient.tryLogin();
        }
        break;
      case 'f1':
        loginPageEffect();
        break;
      case 'f2':
        // [F2]: AppLayout's listener calls whenever iframe auth is enabled,
        // logged in or not, and registers the login channel.
        if (enabled) {
          window.addEventListener('message', loginChannel(instances.listener));
          instances.listener.tryLogin();
        }
        loginPageEffect();
        break;
      case 'l':
        // (inferred) This emulator mounts AppLayout once the settings are
        // there. [L]: the listener's useIframe() calls from its own effect
        // and the listener's effect calls again: at least two calls on every
        // load, even with a stored token.
        if (enabled) {
          instances.listener.tryLogin();
          instances.listener.tryLogin();
          window.addEventListener('message', loginChannel(instances.listener));
        }
        // [event-L]: startup once, at mount, with the settings known then.
        fireGlobalEvent('startup', true);
        scriptMounted = true;
        uidChanged();
        if (!uid) mountLoginPage();
        break;
    }
    // [event-old]: events waiting for the settings go out now, in order.
    for (const [eventName, data] of deferred.splice(0)) post(eventName, data);
    emu.ready = true;
    render();
  }

  function start() {
    const token = storage.get(LOGIN_TOKEN_KEY);
    uid = token !== null ? storage.get(USER_ID_KEY) || 'stored' : null;
    // The client generation is part of the page (webclient.go), as the code
    // is part of Rocket.Chat's bundle.
    const root = document.documentElement;
    gen = root.getAttribute('data-rcemu-client') || 'l';
    emu.profile = root.getAttribute('data-rcemu-profile') || '';
    emu.client = gen;
    $('rc-version').textContent = root.getAttribute('data-rcemu-version') || '';
    window.addEventListener('message', (e) => record('message', { origin: e.origin, data: clone(e.data) }));
    window.addEventListener('message', onCommand);
    window.addEventListener('popstate', openRoomFromLocation);
    if (gen === 'x') {
      instances.exported = newInstance('exported', true);
      instances.xClient = newInstance('iframe_client', false);
      // [X-client]: the login channel listener is registered at start-up.
      window.addEventListener('message', loginChannel(instances.xClient));
    } else if (gen === 'f2' || gen === 'l') {
      instances.listener = newInstance('listener', false);
    }
    if (gen !== 'l') {
      // [event-old] Meteor.startup(() => fireGlobalEvent('startup', true)):
      // x and f1 post it when the settings arrive; f2 drops it ([event-79]).
      fireGlobalEvent('startup', true);
    }
    uidChanged();
    if (token !== null) {
      // Meteor's auto-login with the stored token; on failure the client is
      // logged out, which unstores the token (and calls the API URL).
      loginWithResume(token, (err) => { if (err) makeClientLoggedOut(); });
    } else {
      mountLoginPage();
    }
    render();
    // The public settings arrive after the page's load event on a first
    // visit: the client connects (DDP) once its bundle has loaded, then asks
    // for them (Config.SettingsDelay stands for that time).
    const delay = Number(root.getAttribute('data-rcemu-settings-delay')) || 0;
    const fetchSettings = async () => {
      try {
        const res = await fetch('/_emu/public-settings', { credentials: 'same-origin' });
        const body = await res.json();
        settings = body.settings || {};
      } catch (err) {
        record('settings-error', { message: String(err) });
      }
      settingsArrived();
    };
    if (document.readyState === 'complete') setTimeout(fetchSettings, delay);
    else window.addEventListener('load', () => setTimeout(fetchSettings, delay), { once: true });
  }

  start();
})();
