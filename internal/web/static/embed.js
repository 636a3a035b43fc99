/* rcsso embed.js — put Rocket.Chat on your page, already logged in.
 *
 *   <script src="https://sso.example.com/embed.js" defer></script>
 *   <rocketchat-embed rocketchat="https://chat.example.com" path="/channel/general"></rocketchat-embed>
 *
 * Attributes: rocketchat (Rocket.Chat URL, required), path (room path,
 * default /home), sso (rcsso URL; default: where this script came from),
 * code (a single-use code from POST /embed/codes, for host pages on another
 * site than rcsso; or in the page URL's fragment as #rcsso_code=…). The element gets the token from rcsso (same-site fetch
 * with credentials, or by redeeming the code once) and pushes it into the
 * chat with Rocket.Chat's iframe integration command login-with-token,
 * addressed to Rocket.Chat's exact origin. Rocket.Chat's outgoing events
 * (unread-changed, room-opened, Custom_Script_Logged_In, …) are dispatched
 * on the element as DOM events whose detail is the event data; methods:
 * go(path), logout(), login(). rcsso events: rcsso-token-sent (a push),
 * rcsso-not-logged-in, rcsso-error (never after the chat has logged in).
 * Needs Rocket.Chat settings Iframe_Integration_receive_enable with this
 * page's origin in Iframe_Integration_receive_origin, and
 * Iframe_Integration_send_enable for the events.
 *
 * When to push: Rocket.Chat hears commands only once its public settings
 * have arrived, which on a first visit is after the iframe's load event;
 * a command sent earlier is lost without a word. Any event the chat sends
 * (startup first, where it sends one) shows that it now listens, so the
 * element pushes once per chat document on the first event, and again on
 * a later startup (a new listener). 7.9–7.x send no event before a login
 * (Rocket.Chat issue #36881): without any event 3 s after the load, the
 * element pushes and retries (3, 6, 12, 24 s) until the chat says
 * Custom_Script_Logged_In. The token stays in memory only until then.
 */
(function () {
  'use strict';
  if (window.customElements.get('rocketchat-embed')) return;
  var script = document.currentScript;
  var defaultSSO = script ? new URL(script.src).origin + new URL(script.src).pathname.replace(/\/embed\.js$/, '') : '';
  var FALLBACK_FIRST = 3000, FALLBACK_TRIES = 4;

  // A default size, so that the element pasted with no style of its own is
  // a chat one can use (an iframe alone is 150 px tall). :where() has no
  // specificity and the sheet comes before the page's adopted sheets, so
  // any rule of the page (rocketchat-embed{height:…}, an id, a class, a
  // style attribute) wins. Constructed sheets need no CSP style-src; where
  // they are missing, a <style> first in <head> (a strict CSP may drop it).
  var DEFAULT_STYLE = ':where(rocketchat-embed){display:block;height:min(80vh,720px)}';
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(DEFAULT_STYLE);
    document.adoptedStyleSheets = [sheet].concat(Array.prototype.slice.call(document.adoptedStyleSheets));
  } catch (e) {
    var style = document.createElement('style');
    style.textContent = DEFAULT_STYLE;
    var head = document.head || document.documentElement;
    head.insertBefore(style, head.firstChild);
  }

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
    this._token = null; // held until the chat confirms the login
    this._doc = 0; // chat documents loaded so far
    this._heardDoc = 0; // last document the chat sent an event from
    this._pushedDoc = 0; // last document pushed to on an event
    this._loggedIn = false;
    this._loggedInDoc = 0;
    this._succeeded = false; // the chat logged in: never report a failure after this
    var iframe = document.createElement('iframe');
    iframe.title = this.getAttribute('title') || 'Chat';
    iframe.setAttribute('allow', 'storage-access');
    iframe.style.cssText = 'border:0;width:100%;height:100%;display:block';
    iframe.src = rc.origin + (this.getAttribute('path') || '/home');
    this._iframe = iframe;
    this._onMessage = function (e) { self._message(e); };
    window.addEventListener('message', this._onMessage);
    iframe.addEventListener('load', function () { self._loaded(); });
    if (!this.style.display) this.style.display = 'block';
    this.appendChild(iframe);
  };

  RocketChatEmbed.prototype.disconnectedCallback = function () {
    window.removeEventListener('message', this._onMessage);
    clearTimeout(this._timer);
    this._token = null;
  };

  // A new chat document: it listens only once its settings arrive.
  RocketChatEmbed.prototype._loaded = function () {
    this._doc++;
    this._loggedIn = false;
    clearTimeout(this._timer);
    if (!this._succeeded) this._fallback(this._doc, 0);
  };

  // No event from this document yet: push anyway, then retry.
  RocketChatEmbed.prototype._fallback = function (doc, tries) {
    var self = this;
    this._timer = setTimeout(function () {
      if (self._doc !== doc || self._heardDoc === doc || self._loggedIn) return;
      if (tries >= FALLBACK_TRIES) { self._token = null; return; }
      self._push();
      self._fallback(doc, tries + 1);
    }, FALLBACK_FIRST << tries);
  };

  RocketChatEmbed.prototype._message = function (e) {
    // Only Rocket.Chat's own frame, from its exact origin.
    if (e.origin !== this._rcOrigin || !this._iframe || e.source !== this._iframe.contentWindow) return;
    var d = e.data;
    if (!d || typeof d !== 'object' || typeof d.eventName !== 'string') return;
    var first = this._heardDoc !== this._doc;
    this._heardDoc = this._doc;
    if (d.eventName === 'Custom_Script_Logged_In') {
      this._loggedIn = true;
      this._loggedInDoc = this._doc;
      this._succeeded = true;
      this._token = null;
      clearTimeout(this._timer);
    } else if (d.eventName === 'Custom_Script_Logged_Out') {
      // Logged out after being logged in, in this document: the person
      // logged out in the chat. Do not log them straight back in.
      if (this._loggedIn && this._loggedInDoc === this._doc) this._stopped = true;
      this._loggedIn = false;
    }
    if ((first || d.eventName === 'startup') && this._pushedDoc !== this._doc && d.eventName !== 'Custom_Script_Logged_In') {
      this._pushedDoc = this._doc;
      this._push();
    }
    this.dispatchEvent(new CustomEvent(d.eventName, { detail: d.data, bubbles: true }));
  };

  // _getToken resolves to the token: the one held, else the single-use
  // code's (redeemed once), else a same-site fetch; null when rcsso says
  // the person is not logged in on the website.
  RocketChatEmbed.prototype._getToken = function () {
    var self = this, req, usingCode = !!this._code;
    if (this._token) return Promise.resolve(this._token);
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
      return res.json().then(function (b) {
        self._token = typeof b.token === 'string' ? b.token : null;
        return self._token;
      });
    });
  };

  RocketChatEmbed.prototype._push = function () {
    var self = this;
    if (this._loggedIn || this._pushing || this._stopped) return;
    this._pushing = this._getToken().then(function (token) {
      if (!token) { self._report('rcsso-not-logged-in'); return; }
      if (self._loggedIn || self._stopped) return;
      self._command({ externalCommand: 'login-with-token', token: token });
      self.dispatchEvent(new CustomEvent('rcsso-token-sent', { bubbles: true }));
    }).catch(function (err) {
      self._fail(err && err.message ? err.message : String(err));
    }).then(function () { self._pushing = null; });
  };

  RocketChatEmbed.prototype._command = function (msg) {
    if (this._iframe && this._iframe.contentWindow) this._iframe.contentWindow.postMessage(msg, this._rcOrigin);
  };

  // Failures are reported until the chat has logged in, never after.
  RocketChatEmbed.prototype._report = function (name, detail) {
    if (this._succeeded) return;
    clearTimeout(this._timer);
    this.dispatchEvent(new CustomEvent(name, { detail: detail, bubbles: true }));
  };

  RocketChatEmbed.prototype._fail = function (msg) { this._report('rcsso-error', msg); };

  /** go opens a path (e.g. /channel/general) inside the chat. */
  RocketChatEmbed.prototype.go = function (path) { this._command({ externalCommand: 'go', path: String(path) }); };
  /** logout logs the chat out (the website session is untouched). */
  RocketChatEmbed.prototype.logout = function () { this._stopped = true; this._command({ externalCommand: 'logout' }); };
  /** login asks rcsso for a token again and pushes it. */
  RocketChatEmbed.prototype.login = function () {
    this._stopped = false;
    this._loggedIn = false;
    this._succeeded = false;
    this._push();
  };

  window.customElements.define('rocketchat-embed', RocketChatEmbed);
})();
