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

  if (!d.loginToken) return;
  var msg = { event: 'login-with-token', loginToken: d.loginToken };
  if (framed) {
    // Rocket.Chat web client or desktop app (client=electron): the chat is our parent.
    window.parent.postMessage(msg, d.rcOrigin);
    return;
  }
  // Top level: the mobile app's WebView (its injected script turns
  // postMessage into a URL it reads) or a person who opened the page
  // directly. Address the message to this page's own origin only.
  window.postMessage(msg, window.location.origin);
  if (status) status.textContent = 'You are signed in. You can go back to the chat.';
  if (d.returnTo) window.location.replace(d.returnTo);
})();
