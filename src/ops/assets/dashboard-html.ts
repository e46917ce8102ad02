/**
 * The dashboard's HTML shell, shipped inside the router as a string (no file system on Workers, no CDN). All
 * behaviour is in dashboard-js.ts and all style in dashboard-css.ts, so the page runs under a CSP with no inline
 * script or style. `{{ASSET_VERSION}}` is replaced at start with a digest of the assets (cache busting).
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>Auxot dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/app.css?v={{ASSET_VERSION}}">
<script src="/dashboard/app.js?v={{ASSET_VERSION}}" defer></script>
</head>
<body>
<header class="bar">
  <h1>Auxot</h1>
  <span id="summary" class="muted"></span>
  <span id="pill" class="pill" hidden></span>
  <button id="logout" type="button" class="link" hidden>Sign out</button>
</header>

<main>
  <section id="login" class="card login" hidden>
    <h2>Sign in</h2>
    <p class="muted">Enter the router's admin key (<code>adm_…</code>). It stays in this browser tab only
      (session storage) and is sent as a header, never in a URL.</p>
    <form id="login-form" autocomplete="off">
      <label for="key">Admin key</label>
      <input id="key" type="password" spellcheck="false" autocapitalize="off" required
        placeholder="adm_…">
      <button type="submit">Sign in</button>
      <p id="login-error" class="error" role="alert"></p>
    </form>
  </section>

  <div id="app" hidden>
    <p id="banner" class="banner" role="status" hidden></p>

    <section class="tiles" aria-label="Overview">
      <div class="tile" id="tile-workers"><span class="label">Workers ready</span><span class="value">–</span></div>
      <div class="tile" id="tile-slots"><span class="label">Slots busy</span><span class="value">–</span></div>
      <div class="tile" id="tile-queue"><span class="label">Queued</span><span class="value">–</span></div>
      <div class="tile" id="tile-throughput"><span class="label">Tokens/s</span><span class="value">–</span></div>
      <div class="tile" id="tile-ttft"><span class="label">TTFT p50</span><span class="value">–</span></div>
      <div class="tile" id="tile-requests"><span class="label">Requests</span><span class="value">–</span></div>
      <div class="tile" id="tile-tokens"><span class="label">Tokens out</span><span class="value">–</span></div>
      <div class="tile" id="tile-errors"><span class="label">Failed jobs</span><span class="value">–</span></div>
      <div class="tile" id="tile-store" hidden><span class="label">Store commands, last hour</span><span class="value">–</span><span class="label" id="store-month"></span></div>
    </section>

    <section class="charts">
      <div class="card chart">
        <h2>Throughput <span class="muted" id="chart-throughput-now"></span></h2>
        <svg id="chart-throughput" viewBox="0 0 300 60" preserveAspectRatio="none" role="img"
          aria-label="Output tokens per second over the last minutes"></svg>
      </div>
      <div class="card chart">
        <h2>Time to first token <span class="muted" id="chart-ttft-now"></span></h2>
        <svg id="chart-ttft" viewBox="0 0 300 60" preserveAspectRatio="none" role="img"
          aria-label="Average time to first token over the last minutes"></svg>
      </div>
    </section>

    <section class="card">
      <h2>Fleet</h2>
      <div id="workers" class="workers"></div>
      <p id="no-workers" class="muted" hidden></p>
    </section>

    <section class="card">
      <h2>Queue</h2>
      <div id="queue" class="kv"></div>
    </section>

    <section class="card">
      <h2>Recent jobs <span class="muted">(this router instance)</span></h2>
      <div class="scroll">
        <table id="jobs">
          <thead><tr><th>When</th><th>State</th><th class="wide">Model</th><th>Queue</th><th>TTFT</th>
            <th>In / out</th><th>Tok/s</th><th class="wide">Job</th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
    </section>

    <section class="card">
      <h2>Recent errors</h2>
      <ul id="errors" class="errors"></ul>
    </section>

    <section class="card">
      <h2>Connect</h2>
      <dl id="recipe" class="recipe"></dl>
    </section>

    <section class="card">
      <h2>Configuration</h2>
      <div id="config" class="kv"></div>
    </section>
  </div>
</main>
</body>
</html>
`;
