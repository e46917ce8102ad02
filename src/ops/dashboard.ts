/**
 * Serves the dashboard (`/dashboard`, `/dashboard/app.js`, `/dashboard/app.css`) from string modules with strict
 * security headers: a CSP that allows only this origin's script, style and API (no inline code, no framing), no
 * referrer, no sniffing. The page itself holds no data; it logs in with the admin key and polls the status API.
 */
import { DASHBOARD_CSS } from "./assets/dashboard-css.ts";
import { DASHBOARD_HTML } from "./assets/dashboard-html.ts";
import { DASHBOARD_JS } from "./assets/dashboard-js.ts";

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
};

interface Asset {
  body: string;
  type: string;
  etag: string;
}

/** A short digest of the assets: their URLs carry it, so a new router version is never served stale code. */
const VERSION = fnv1a(DASHBOARD_JS + DASHBOARD_CSS + DASHBOARD_HTML);

const ASSETS: Record<string, Asset> = {
  "/dashboard": asset(DASHBOARD_HTML.replaceAll("{{ASSET_VERSION}}", VERSION), "text/html; charset=utf-8"),
  "/dashboard/app.js": asset(DASHBOARD_JS, "text/javascript; charset=utf-8"),
  "/dashboard/app.css": asset(DASHBOARD_CSS, "text/css; charset=utf-8"),
};

function asset(body: string, type: string): Asset {
  return { body, type, etag: `"${fnv1a(body)}"` };
}

/** The response for a dashboard path, or undefined when the path is not one of its files. */
export function dashboardResponse(request: Request): Response | undefined {
  const url = new URL(request.url);
  const path = url.pathname === "/dashboard/" || url.pathname === "/dashboard/index.html" ? "/dashboard" : url.pathname;
  const file = ASSETS[path];
  if (!file) return undefined;
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    "content-type": file.type,
    etag: file.etag,
    // The page is tiny and must follow upgrades at once; versioned assets may be cached for a day.
    "cache-control": path === "/dashboard" || url.searchParams.get("v") !== VERSION
      ? "no-cache"
      : "public, max-age=86400, immutable",
  };
  if (request.headers.get("if-none-match") === file.etag) return new Response(null, { status: 304, headers });
  return new Response(file.body, { headers });
}

function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}
