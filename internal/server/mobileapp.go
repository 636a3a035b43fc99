package server

import "net/http"

// Rocket.Chat's mobile app logs in with iframe authentication through a
// WebView that loads the workspace URL, not the IFrame URL. It takes a token
// only from a message posted to that top-level page, which its injected
// script writes into the page's URL fragment: the IFrame URL's hand-over to
// window.parent. A token the API URL gives the web client inside the WebView
// logs in that web client and never reaches the app, which stays on its
// login screen. (Rocket.Chat.ReactNative app/views/AuthenticationWebView.tsx
// and app/views/WorkspaceView/index.tsx at
// https://github.com/RocketChat/Rocket.Chat.ReactNative/tree/2af4bda3e664c539f5ca5b042c7f1e84fb2e42c4;
// e2e/mobile_test.go plays that app.)
//
// So the API URL answers the app's WebView as it answers a visitor it does
// not know (401): Rocket.Chat then shows the IFrame URL, which recognises
// the visitor and hands the token over where the app sees it. The WebView
// is known by its user agent, a fixed string per platform and app version.
// A browser that sends the same string (an iPhone on Safari 15.5) only goes
// through the IFrame URL, which signs it in the same way.
var mobileAppWebViewUserAgents = map[string]bool{
	// app/lib/constants/userAgent.ts, since 2023-01
	// (https://github.com/RocketChat/Rocket.Chat.ReactNative/pull/4783).
	"Mozilla/5.0 (iPhone; CPU iPhone OS 15_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.5 Mobile/15E148 Safari/604.1": true,
	"Mozilla/5.0 (Linux; Android 12; SM-A315G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.114 Mobile Safari/537.36":              true,
	// app/views/AuthenticationWebView.js from iframe authentication's
	// start in the app, 2020-06 (https://github.com/RocketChat/Rocket.Chat.ReactNative/pull/2184), to 2023-01.
	"Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_1 like Mac OS X) AppleWebKit/603.1.30 (KHTML, like Gecko) Version/10.0 Mobile/14E304 Safari/602.1": true,
	"Mozilla/5.0 (Linux; Android 6.0.1; SM-G920V Build/MMB29K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.98 Mobile Safari/537.36": true,
}

// errMobileAppWebView is the API URL's answer to the mobile app's WebView.
var errMobileAppWebView = &Error{Status: http.StatusUnauthorized, Message: "Rocket.Chat's mobile app takes the chat token from the IFrame URL"}

// fromMobileAppWebView reports whether r comes from Rocket.Chat's mobile
// app's login WebView (exact user agent match).
func fromMobileAppWebView(r *http.Request) bool {
	return mobileAppWebViewUserAgents[r.Header.Get("User-Agent")]
}
