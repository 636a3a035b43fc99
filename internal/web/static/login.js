// rcsso IFrame URL script. Hands the Rocket.Chat resume token to the
// Rocket.Chat window that framed this page, with its exact origin as the
// target (never '*'), and shows login-error replies.
(function () {
  'use strict';
  var el = document.getElementById('rcsso-data');
  if (!el) return;
  var d;
  try { d = JSON.parse(el.textContent); } catch (e) { return; }
  var framed = window.parent !== window;
  var status = document.getElementById('status');
  var errBox = document.getElementById('handoff-error');
  var retry = document.getElementById('retry');

  // Interactive identity sources (OIDC, …): their login pages refuse to be
  // framed, so they run in a top-level popup that reports back here.
  var popup = null;
  if (d.popupDone) {
    // We are that popup: tell the IFrame URL page that opened us, on our
    // own origin only, then close.
    if (window.opener && !window.opener.closed) {
      window.opener.postMessage({ event: 'rcsso-login-done' }, window.location.origin);
      window.close();
    }
    return;
  }
  // Top level (a person who opened this page in a tab): plain links, the
  // provider comes back to this page. Desktop and mobile apps (target=_top):
  // the whole window goes and comes back to Rocket.Chat. Web: a popup.
  // The last fallback for browsers that keep rcsso's cookie away from the
  // iframe: log in top-level in a popup (first-party; this also counts as the
  // interaction Safari wants before granting storage access).
  var lw = document.getElementById('login-window-box');
  if (lw && framed) lw.hidden = false;
  Array.prototype.forEach.call(document.querySelectorAll('a[data-sso]'), function (a) {
    if (!framed || a.target === '_top') return;
    var url = a.getAttribute('data-popup-url');
    var open = function (ev) {
      ev.preventDefault();
      popup = window.open(url, 'rcsso-login', 'popup,width=520,height=680');
      var pe = document.getElementById('popup-error');
      if (!popup && pe) pe.hidden = false;
    };
    a.addEventListener('click', open);
    var fb = document.getElementById('popup-fallback');
    if (fb) { fb.href = url; fb.addEventListener('click', open); }
  });
  window.addEventListener('message', function (e) {
    if (e.origin === window.location.origin && popup && e.source === popup &&
        e.data && e.data.event === 'rcsso-login-done') {
      window.location.reload(); // now logged in: the page hands the token over
    }
  });

  window.addEventListener('message', function (e) {
    if (e.origin !== d.rcOrigin || e.source !== window.parent) return;
    var m = e.data;
    if (!m || typeof m !== 'object' || m.event !== 'login-error') return;
    if (errBox) {
      errBox.textContent = 'The chat could not sign you in' + (typeof m.response === 'string' && m.response ? ': ' + m.response : '.');
      errBox.hidden = false;
    }
    if (retry) retry.hidden = false;
  });

  // Cross-site deployments where the browser blocks third-party cookies:
  // inside Rocket.Chat's iframe rcsso's cookie is not visible until the
  // person grants storage access (Storage Access API; a click is needed).
  // Not on pages for a person rcsso recognised (d.known): their cookie came.
  if (!d.loginToken && !d.native && !d.known && framed && document.hasStorageAccess) {
    document.hasStorageAccess().then(function (has) {
      if (has) return;
      var box = document.getElementById('storage-access-box');
      var btn = document.getElementById('storage-access');
      if (!box || !btn) return;
      box.hidden = false;
      btn.addEventListener('click', function () {
        document.requestStorageAccess().then(function () { window.location.reload(); }, function () {
          box.textContent = 'The browser did not allow it. Use the login below, or open ' + window.location.origin + ' in a tab and log in there first.';
        });
      });
    });
  }

  if (!d.loginToken) return;
  if (framed) {
    // Inside Rocket.Chat: its web client, the desktop app (client=electron),
    // or the mobile app's WebView, which loads the workspace page, not this
    // one, and catches this message there (its injected script writes it
    // into the page's URL; Rocket.Chat.ReactNative AuthenticationWebView.tsx).
    // An iframe token (minting mode mongo-iframe) goes as "token", a resume
    // token as "loginToken" (rocketchat-protocol.md §1.6).
    const msg = { event: 'login-with-token' };
    msg[d.tokenKey === 'token' ? 'token' : 'loginToken'] = d.loginToken;
    window.parent.postMessage(msg, d.rcOrigin);
    return;
  }
  // Top level: a person opened this page in a tab. No Rocket.Chat client
  // loads it so, and there is no chat window to hand the token to; the
  // website session just started serves the chat's next API URL call.
  if (status) status.textContent = 'You are signed in. You can go back to the chat.';
})();
