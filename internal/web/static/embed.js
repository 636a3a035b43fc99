/* rcsso embed.js — put Rocket.Chat on your page, already logged in.
 *
 *   <script src="https://sso.example.com/embed.js" defer></script>
 *   <rocketchat-embed rocketchat="https://chat.example.com" path="/channel/general"></rocketchat-embed>
 *
 * Attributes: rocketchat (Rocket.Chat URL, required), path (room path,
 * default /home), sso (rcsso URL; default: where this script came from),
 * code (a single-use code from POST /embed/codes, for host pages on another
 * site than rcsso; or in the page URL's fragment as #rcsso_code=…). The element gets the token from rcsso (same-site fetch
 * with credentials, or by redeeming the code) and pushes it into the chat
 * with Rocket.Chat's iframe integration command login-with-token, addressed
 * to Rocket.Chat's exact origin. Rocket.Chat's outgoing events
 * (unread-changed, room-opened, Custom_Script_Logged_In, …) are dispatched
 * on the element as DOM events whose detail is the event data; methods:
 * go(path), logout(). Needs Rocket.Chat settings Iframe_Integration_receive_enable
 * with this page's origin in Iframe_Integration_receive_origin (and
 * Iframe_Integration_send_enable for the events).
 */
(function () {
  'use strict';
  if (window.customElements.get('rocketchat-embed')) return;
  var script = document.currentScript;
  var defaultSSO = script ? new URL(script.src).origin + new URL(script.src).pathname.replace(/\/embed\.js$/, '') : '';

  class RocketChatEmbed extends HTMLElement {}

  // A single-use code may also arrive in the page URL's fragment
  // (#rcsso_code=…), never its query string; it is removed from the address
  // bar at once.
  function codeFromFragment() {
    var m = /(?:^#|&)rcsso_code=([A-Za-z0-9]+)/.exec(window.location.hash);
    if (!m) return null;
    var rest = window.location.hash.replace(m[0], '').replace(/^#&?/, '');
    history.replaceState(null, '', window.location.pathname + window.location.search + (rest ? '#' + rest : ''));
    return m[1];
  }

  RocketChatEmbed.prototype.connectedCallback = function () {
    if (this._iframe) return;
    var self = this;
    var rc;
    try { rc = new URL(this.getAttribute('rocketchat')); } catch (e) { this._fail('the rocketchat attribute is not a URL'); return; }
    this._rcOrigin = rc.origin;
    this._sso = (this.getAttribute('sso') || defaultSSO).replace(/\/$/, '');
    this._code = this.getAttribute('code') || codeFromFragment();
    this.removeAttribute('code'); // single use: keep it out of the DOM
    this._loggedIn = false;
    this._pushing = null;
    var iframe = document.createElement('iframe');
    iframe.title = this.getAttribute('title') || 'Chat';
    iframe.setAttribute('allow', 'storage-access');
    iframe.style.cssText = 'border:0;width:100%;height:100%;display:block';
    iframe.src = rc.origin + (this.getAttribute('path') || '/home');
    this._iframe = iframe;
    this._onMessage = function (e) { self._message(e); };
    window.addEventListener('message', this._onMessage);
    iframe.addEventListener('load', function () { self._push(); });
    if (!this.style.display) this.style.display = 'block';
    this.appendChild(iframe);
  };

  RocketChatEmbed.prototype.disconnectedCallback = function () {
    window.removeEventListener('message', this._onMessage);
  };

  RocketChatEmbed.prototype._message = function (e) {
    // Only Rocket.Chat's own frame, from its exact origin.
    if (e.origin !== this._rcOrigin || !this._iframe || e.source !== this._iframe.contentWindow) return;
    var d = e.data;
    if (!d || typeof d !== 'object' || typeof d.eventName !== 'string') return;
    if (d.eventName === 'Custom_Script_Logged_In') this._loggedIn = true;
    if (d.eventName === 'Custom_Script_Logged_Out') this._loggedIn = false;
    if (d.eventName === 'startup' && !this._loggedIn) this._push();
    this.dispatchEvent(new CustomEvent(d.eventName, { detail: d.data, bubbles: true }));
  };

  RocketChatEmbed.prototype._token = function () {
    var req, usingCode = !!this._code;
    if (this._code) {
      var code = this._code;
      this._code = null;
      req = fetch(this._sso + '/embed/redeem', {
        method: 'POST', credentials: 'omit', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ code: code })
      });
    } else {
      req = fetch(this._sso + '/embed/token', { method: 'POST', credentials: 'include' });
    }
    return req.then(function (res) {
      if (usingCode && !res.ok) throw new Error('rcsso refused the single-use code (' + res.status + ')');
      if (res.status === 401) return null; // not logged in on the website
      if (!res.ok) throw new Error('rcsso answered ' + res.status);
      return res.json().then(function (b) { return typeof b.token === 'string' ? b.token : null; });
    });
  };

  RocketChatEmbed.prototype._push = function () {
    var self = this;
    if (this._loggedIn || this._pushing || this._stopped) return;
    this._pushing = this._token().then(function (token) {
      if (!token) { self.dispatchEvent(new CustomEvent('rcsso-not-logged-in', { bubbles: true })); return; }
      self._command({ externalCommand: 'login-with-token', token: token });
      self.dispatchEvent(new CustomEvent('rcsso-token-sent', { bubbles: true }));
    }).catch(function (err) {
      self._fail(err && err.message ? err.message : String(err));
    }).then(function () { self._pushing = null; });
  };

  RocketChatEmbed.prototype._command = function (msg) {
    if (this._iframe && this._iframe.contentWindow) this._iframe.contentWindow.postMessage(msg, this._rcOrigin);
  };

  RocketChatEmbed.prototype._fail = function (msg) {
    this.dispatchEvent(new CustomEvent('rcsso-error', { detail: msg, bubbles: true }));
  };

  /** go opens a path (e.g. /channel/general) inside the chat. */
  RocketChatEmbed.prototype.go = function (path) { this._command({ externalCommand: 'go', path: String(path) }); };
  /** logout logs the chat out (the website session is untouched). */
  RocketChatEmbed.prototype.logout = function () { this._stopped = true; this._command({ externalCommand: 'logout' }); };
  /** login asks rcsso for a token again and pushes it. */
  RocketChatEmbed.prototype.login = function () { this._stopped = false; this._loggedIn = false; this._push(); };

  window.customElements.define('rocketchat-embed', RocketChatEmbed);
})();
