/** The dashboard's stylesheet (mobile first; light and dark), shipped inside the router as a string. */
export const DASHBOARD_CSS = `
:root {
  --bg: #f6f7f9; --card: #fff; --text: #17202a; --muted: #667085; --line: #e4e7ec;
  --accent: #2563eb; --ok: #16a34a; --warn: #d97706; --bad: #dc2626; --busy: #2563eb; --free: #d0d5dd;
  font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1115; --card: #181b22; --text: #e6e8ec; --muted: #98a2b3; --line: #2a2f3a;
    --accent: #60a5fa; --busy: #60a5fa; --free: #3a4150;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
[hidden] { display: none !important; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85em; }
.muted { color: var(--muted); font-weight: normal; }
.error { color: var(--bad); min-height: 1.2em; }

.bar {
  display: flex; align-items: center; gap: 0.75rem; flex-wrap: wrap;
  padding: 0.6rem 1rem; background: var(--card); border-bottom: 1px solid var(--line);
  position: sticky; top: 0; z-index: 1;
}
.bar h1 { font-size: 1.1rem; margin: 0; }
.bar #summary { flex: 1 1 12rem; font-size: 0.85rem; overflow-wrap: anywhere; }
@media (max-width: 639px) { .bar #summary { order: 3; flex-basis: 100%; } .bar h1 { flex: 1; } }
.pill { font-size: 0.8rem; padding: 0.1rem 0.6rem; border-radius: 1rem; color: #fff; background: var(--ok); }
.pill.degraded { background: var(--warn); }
.pill.error { background: var(--bad); }
button {
  font: inherit; padding: 0.5rem 1rem; border-radius: 0.4rem; border: 0; background: var(--accent); color: #fff;
  cursor: pointer;
}
button.link { background: none; color: var(--accent); padding: 0.2rem 0.4rem; }
button.copy { font-size: 0.75rem; padding: 0.15rem 0.5rem; margin-left: 0.5rem; }

main { padding: 0.75rem; max-width: 1200px; margin: 0 auto; display: grid; gap: 0.75rem; }
#app { display: grid; gap: 0.75rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 0.6rem; padding: 0.75rem 1rem; }
.card h2 { font-size: 0.95rem; margin: 0 0 0.6rem; }
.login { max-width: 28rem; margin: 10vh auto 0; width: 100%; }
.login form { display: grid; gap: 0.5rem; }
.login input {
  font: inherit; padding: 0.55rem; border-radius: 0.4rem; border: 1px solid var(--line); background: var(--bg);
  color: var(--text); width: 100%;
}
.banner { margin: 0; padding: 0.5rem 0.75rem; border-radius: 0.4rem; background: var(--warn); color: #fff; }

.tiles { display: grid; grid-template-columns: repeat(2, 1fr); gap: 0.5rem; }
@media (min-width: 640px) { .tiles { grid-template-columns: repeat(4, 1fr); } }
.tile {
  background: var(--card); border: 1px solid var(--line); border-radius: 0.6rem; padding: 0.5rem 0.75rem;
  display: flex; flex-direction: column;
}
.tile .label { font-size: 0.75rem; color: var(--muted); text-transform: uppercase; letter-spacing: 0.03em; }
.tile .value { font-size: 1.4rem; font-weight: 600; font-variant-numeric: tabular-nums; }

.charts { display: grid; gap: 0.75rem; }
@media (min-width: 800px) { .charts { grid-template-columns: 1fr 1fr; } }
.chart svg { width: 100%; height: 70px; display: block; }
.chart rect { fill: var(--accent); }
.chart line { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }

.workers { display: grid; gap: 0.5rem; }
@media (min-width: 800px) { .workers { grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); } }
.worker { border: 1px solid var(--line); border-radius: 0.5rem; padding: 0.6rem 0.75rem; display: grid; gap: 0.3rem; }
.worker .head { display: flex; gap: 0.5rem; align-items: baseline; flex-wrap: wrap; }
.worker .name { font-weight: 600; overflow-wrap: anywhere; }
.badge { font-size: 0.7rem; padding: 0 0.45rem; border-radius: 0.3rem; border: 1px solid var(--line); }
.badge.ready { border-color: var(--ok); color: var(--ok); }
.badge.loading { border-color: var(--warn); color: var(--warn); }
.worker .detail { font-size: 0.85rem; color: var(--muted); overflow-wrap: anywhere; }
.slots { display: flex; gap: 3px; flex-wrap: wrap; align-items: center; }
.slot { width: 16px; height: 16px; border-radius: 3px; background: var(--free); }
.slot.busy { background: var(--busy); }
.slots .count { font-size: 0.8rem; color: var(--muted); margin-left: 0.4rem; }

.kv { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; font-size: 0.85rem; }
.kv .k { color: var(--muted); }
.kv .v { overflow-wrap: anywhere; }

.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.82rem; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; }
@media (max-width: 639px) { .wide { display: none; } }
.state-done { color: var(--ok); }
.state-running, .state-queued { color: var(--accent); }
.state-failed, .state-timed_out, .state-queue_timeout { color: var(--bad); }
.state-cancelled { color: var(--muted); }

.errors { margin: 0; padding-left: 1.1rem; font-size: 0.85rem; }
.errors li { margin-bottom: 0.25rem; overflow-wrap: anywhere; }

.recipe { margin: 0; display: grid; gap: 0.3rem; font-size: 0.85rem; }
.recipe dt { color: var(--muted); margin-top: 0.4rem; }
.recipe dd { margin: 0; display: flex; align-items: flex-start; }
.recipe code {
  display: block; flex: 1; background: var(--bg); border: 1px solid var(--line); border-radius: 0.3rem;
  padding: 0.35rem 0.5rem; overflow-wrap: anywhere; white-space: pre-wrap;
}
`;
