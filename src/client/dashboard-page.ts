/**
 * The dashboard's one HTML page, with its CSS and script inline (no build step, no external resources). The server
 * interpolates nothing into it: the script fetches `/api/progress` and builds the DOM with `textContent` and
 * `createElement` only, so nothing a workflow reports is ever parsed as HTML. The CSP allows exactly this script and
 * this style by hash.
 */
import { createHash } from 'node:crypto';

const STYLE = String.raw`
:root { --fg:#1d2430; --muted:#5b6675; --line:#d8dee6; --bg:#f5f7fa; --card:#fff; --run:#1f6feb; --ok:#1a7f37;
  --bad:#cf222e; --warn:#9a6700; --warnbg:#fff8c5; --pause:#8250df; --pausebg:#fbefff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--fg);
  background:var(--bg); }
header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; background:#fff;
  border-bottom:1px solid var(--line); }
header h1 { font-size:17px; margin:0; font-weight:600; }
header .conn { margin-left:auto; color:var(--muted); font-size:12px; }
header .conn.err { color:var(--bad); }
main { max-width:1040px; margin:18px auto; padding:0 24px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 18px; margin-bottom:18px; }
h2 { font-size:14px; margin:0 0 10px; }
a { color:var(--run); text-decoration:none; }
a:hover { text-decoration:underline; }
.mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace; font-size:12.5px; }
.muted { color:var(--muted); }
.head { display:flex; flex-wrap:wrap; align-items:center; gap:8px 10px; }
.head .name { font-weight:600; font-size:15px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600;
  border:1px solid currentColor; color:var(--muted); }
.badge.running { color:var(--run); } .badge.completed { color:var(--ok); }
.badge.failed, .badge.rolled_back, .badge.rolling_back { color:var(--bad); }
.badge.paused, .badge.paused_for_quota, .badge.awaiting_confirmation { color:var(--pause); }
.flag { display:inline-block; padding:1px 8px; border-radius:4px; font-size:12px; }
.flag.cooldown { color:var(--warn); background:var(--warnbg); }
.flag.pause { color:var(--pause); background:var(--pausebg); }
.flag:empty { display:none; }
.facts { display:flex; flex-wrap:wrap; gap:4px 22px; margin:10px 0 4px; color:var(--muted); }
.facts b { color:var(--fg); font-weight:600; }
.error { color:var(--bad); margin-top:8px; }
.error:empty { display:none; }
ul.tree { list-style:none; margin:12px 0 0 8px; padding:0 0 0 18px; border-left:2px solid var(--line); }
ul.tree > li { position:relative; padding:10px 0 10px 4px; border-bottom:1px solid #eef1f4; }
ul.tree > li:last-child { border-bottom:0; }
ul.tree > li::before { content:""; position:absolute; left:-20px; top:21px; width:14px; border-top:2px solid var(--line); }
.phase .name { min-width:128px; }
.phase .name + .mono { min-width:110px; }
.bar { height:10px; border-radius:5px; background:#e9edf2; overflow:hidden; margin:8px 0 6px; max-width:620px; }
.bar > div { height:100%; width:0; background:var(--run); transition:width .4s ease; }
.phase[data-status="completed"] .bar > div { background:var(--ok); }
.phase[data-status="failed"] .bar > div { background:var(--bad); }
.phase.cooling .bar > div { background:#d4a72c; }
.phase.paused .bar > div { background:var(--pause); }
.stats { display:flex; flex-wrap:wrap; gap:2px 18px; color:var(--muted); }
.stats b { color:var(--fg); font-weight:600; font-variant-numeric:tabular-nums; }
.stats b.bad { color:var(--bad); }
table { border-collapse:collapse; font-size:12.5px; }
td, th { text-align:left; padding:2px 14px 2px 0; }
th { color:var(--muted); font-weight:500; }
.reasons { margin-top:6px; }
.reasons td:last-child { text-align:right; font-variant-numeric:tabular-nums; }
.reasons:empty { display:none; }
.runs td { padding:3px 16px 3px 0; border-top:1px solid #eef1f4; }
.runs tr.current td { font-weight:600; }
`;

const SCRIPT = String.raw`
'use strict';
(function () {
  var POLL_MS = 1000, IDLE_POLL_MS = 5000;
  var FINAL = { completed: 1, failed: 1, rolled_back: 1 };
  var phaseViews = {};
  var last = null;
  var runsStarted = false;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function byId(id) { return document.getElementById(id); }
  function num(n) { return Number(n || 0).toLocaleString('en-US'); }
  function bytes(n) {
    n = Number(n || 0);
    if (n >= 1e9) return (n / 1e9).toFixed(2) + ' GB';
    if (n >= 1e6) return (n / 1e6).toFixed(1) + ' MB';
    if (n >= 1e3) return (n / 1e3).toFixed(1) + ' kB';
    return n + ' B';
  }
  function duration(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }
  function clock(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString('en-GB');
  }
  function stamp(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? '' : d.toLocaleString('en-GB');
  }
  // Only http(s) links from the server are rendered as links; anything else stays text.
  function safeHref(url) {
    try { var u = new URL(url); return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null; }
    catch (e) { return null; }
  }
  function setLink(a, url, text) {
    var href = url ? safeHref(url) : null;
    if (href) { a.href = href; a.target = '_blank'; a.rel = 'noopener noreferrer'; a.title = 'Open in the Temporal Web UI'; }
    else { a.removeAttribute('href'); }
    a.textContent = text;
  }
  function stat(parent, label) {
    var s = el('span');
    var v = el('b');
    s.appendChild(document.createTextNode(label + ' '));
    s.appendChild(v);
    parent.appendChild(s);
    return v;
  }

  function phaseView(name) {
    var li = el('li', 'phase');
    li.dataset.phase = name;
    var head = el('div', 'head');
    head.appendChild(el('span', 'name', name));
    var v = { li: li };
    v.table = head.appendChild(el('span', 'mono muted'));
    v.table.dataset.field = 'table';
    v.status = head.appendChild(el('span', 'badge'));
    v.status.dataset.field = 'status';
    v.link = head.appendChild(el('a', 'mono'));
    v.link.dataset.field = 'link';
    v.cooldown = head.appendChild(el('span', 'flag cooldown'));
    v.cooldown.dataset.field = 'cooldown';
    v.pause = head.appendChild(el('span', 'flag pause'));
    v.pause.dataset.field = 'pause';
    li.appendChild(head);
    var bar = el('div', 'bar');
    v.fill = bar.appendChild(el('div'));
    li.appendChild(bar);
    var stats = el('div', 'stats');
    var prog = el('span');
    v.done = el('b'); v.done.dataset.field = 'done';
    v.total = el('b'); v.total.dataset.field = 'total';
    v.pct = el('span'); v.pct.dataset.field = 'percent';
    prog.appendChild(v.done);
    prog.appendChild(document.createTextNode(' / '));
    prog.appendChild(v.total);
    prog.appendChild(document.createTextNode(' '));
    prog.appendChild(v.pct);
    stats.appendChild(prog);
    v.eta = stat(stats, 'ETA');
    v.imported = stat(stats, 'imported');
    v.unlinked = stat(stats, 'unlinked');
    v.skipped = stat(stats, 'skipped');
    v.failed = stat(stats, 'failed');
    v.bytes = stat(stats, 'downloaded');
    v.relinked = stat(stats, 'relinked');
    v.cooldowns = stat(stats, 'cooldowns');
    v.delta = stat(stats, 'since last run');
    v.delta.dataset.field = 'delta';
    li.appendChild(stats);
    v.reasons = li.appendChild(el('table', 'reasons'));
    v.reasons.dataset.field = 'reasons';
    return v;
  }

  function renderReasons(table, byReason) {
    var keys = Object.keys(byReason || {}).filter(function (k) { return byReason[k] > 0; }).sort();
    var sig = keys.map(function (k) { return k + '=' + byReason[k]; }).join('&');
    if (table.dataset.sig === sig) return;
    table.dataset.sig = sig;
    table.replaceChildren();
    if (!keys.length) return;
    var hr = table.appendChild(el('tr'));
    hr.appendChild(el('th', '', 'by reason'));
    hr.appendChild(el('th', '', 'records'));
    keys.forEach(function (k) {
      var tr = table.appendChild(el('tr'));
      tr.dataset.reason = k;
      tr.appendChild(el('td', 'mono', k));
      tr.appendChild(el('td', '', num(byReason[k])));
    });
  }

  // Added, changed and vanished records since the previous completed run, over the phase's tables.
  function deltaText(delta) {
    var sum = { added: 0, changed: 0, vanished: 0 }, compared = false;
    Object.keys(delta || {}).forEach(function (t) {
      var d = delta[t];
      if (!d || !d.previousRunId) return;
      compared = true;
      sum.added += Number(d.added || 0);
      sum.changed += Number(d.changed || 0);
      sum.vanished += Number(d.vanished || 0);
    });
    return compared ? '+' + num(sum.added) + ' ~' + num(sum.changed) + ' \u2212' + num(sum.vanished) : '\u2013';
  }

  function renderPhase(v, p, link) {
    v.li.dataset.status = p.status;
    v.status.className = 'badge ' + p.status;
    v.status.textContent = p.status.replace(/_/g, ' ');
    if (p.workflowId) setLink(v.link, link, p.workflowId + (link ? ' \u2197' : ''));
    else setLink(v.link, null, '');
    var total = Number(p.total || 0), done = Number(p.done || 0);
    var pct = total > 0 ? Math.min(100, Math.floor((100 * done) / total)) : p.status === 'completed' ? 100 : 0;
    v.fill.style.width = pct + '%';
    v.done.textContent = num(done);
    v.total.textContent = num(total);
    v.pct.textContent = '(' + pct + '%)';
    var bs = p.byState || {};
    v.eta.textContent = p.etaSeconds !== undefined && p.etaSeconds !== null ? duration(p.etaSeconds) : '\u2013';
    v.imported.textContent = num(bs.imported);
    v.unlinked.textContent = num(bs.unlinked);
    v.skipped.textContent = num(bs.skipped);
    v.failed.textContent = num(bs.failed);
    v.failed.classList.toggle('bad', Number(bs.failed || 0) > 0);
    v.bytes.textContent = bytes(p.bytesDownloaded);
    v.relinked.textContent = num(p.relinked);
    v.cooldowns.textContent = num(p.cooldowns);
    v.delta.textContent = deltaText(p.delta);
    v.table.textContent = p.table || '';
    var cooling = false;
    if (p.cooldownUntil) {
      var left = (new Date(p.cooldownUntil).getTime() - Date.now()) / 1000;
      cooling = !(left < 0);
      v.cooldown.textContent = 'cooling down until ' + clock(p.cooldownUntil) + (left > 0 ? ' (' + duration(left) + ')' : '');
    } else {
      v.cooldown.textContent = '';
    }
    v.pause.textContent = p.pausedForQuota ? 'paused for transfer budget' : p.paused ? 'paused' : '';
    v.li.classList.toggle('cooling', cooling);
    v.li.classList.toggle('paused', Boolean(p.paused || p.pausedForQuota));
    renderReasons(v.reasons, p.byReason);
  }

  function render(snap) {
    last = snap;
    document.title = 'reimport ' + snap.runId;
    byId('run-id').textContent = snap.runId;
    setLink(byId('run-link'), snap.runLink, snap.runId + (snap.runLink ? ' \u2197' : ''));
    byId('run-error').textContent = snap.error || '';
    byId('run-certificate').textContent = snap.certificateCommand || '';
    byId('run-signoff').textContent =
      snap.signoff === undefined ? '\u2013' : snap.signoff ? snap.signoff.by + ', ' + clock(snap.signoff.at) : 'not signed off';
    var p = snap.progress;
    var badge = byId('run-status');
    var status = p ? p.status : snap.closedStatus ? snap.closedStatus.toLowerCase() : 'unknown';
    badge.className = 'badge ' + status;
    badge.textContent = status.replace(/_/g, ' ');
    if (!p) return;
    byId('run-dry').textContent = p.dryRun ? 'dry run' : '';
    byId('run-phase').textContent = p.currentPhase || '\u2013';
    byId('run-bytes').textContent = bytes(p.bytesDownloaded);
    byId('run-budget').textContent = p.transferBudgetBytes !== undefined && p.transferBudgetBytes !== null ? bytes(p.transferBudgetBytes) : '\u2013';
    var s = p.settings || {};
    byId('run-settings').textContent =
      'concurrency ' + s.concurrency + ', chunk ' + s.chunkSize + ', file batch ' + s.fileBatchSize;
    var list = byId('phases');
    var seen = {};
    p.phases.forEach(function (ph, i) {
      seen[ph.phase] = 1;
      var v = phaseViews[ph.phase] || (phaseViews[ph.phase] = phaseView(ph.phase));
      if (list.children[i] !== v.li) list.insertBefore(v.li, list.children[i] || null);
      renderPhase(v, ph, snap.phaseLinks ? snap.phaseLinks[ph.phase] : null);
    });
    Object.keys(phaseViews).forEach(function (k) {
      if (!seen[k]) { phaseViews[k].li.remove(); delete phaseViews[k]; }
    });
  }

  function setConn(text, bad) {
    var c = byId('conn');
    c.textContent = text;
    c.classList.toggle('err', Boolean(bad));
  }

  function poll() {
    fetch('api/progress', { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (snap) {
        render(snap);
        setConn((snap.error ? 'run unavailable' : 'live') + ' \u00b7 updated ' + clock(snap.fetchedAt), Boolean(snap.error));
      })
      .catch(function (e) { setConn('dashboard unreachable: ' + e.message, true); })
      .then(function () {
        // The runs list marks the current run, so it starts once the first answer named it.
        if (!runsStarted) { runsStarted = true; loadRuns(); }
        var idle = last && last.progress ? FINAL[last.progress.status] : last && last.closedStatus;
        setTimeout(poll, idle ? IDLE_POLL_MS : POLL_MS);
      });
  }

  function loadRuns() {
    fetch('api/runs', { cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : { runs: [] }; })
      .then(function (data) {
        var body = byId('runs-body');
        body.replaceChildren();
        (data.runs || []).forEach(function (w) {
          var tr = body.appendChild(el('tr', w.workflowId === (last && last.runId) ? 'current' : ''));
          var a = el('a', 'mono');
          setLink(a, w.link, w.workflowId);
          tr.appendChild(el('td')).appendChild(a);
          tr.appendChild(el('td', '', w.status.toLowerCase()));
          tr.appendChild(el('td', 'muted', stamp(w.startTime)));
          tr.appendChild(el('td', 'muted', w.closeTime ? stamp(w.closeTime) : ''));
        });
        byId('runs').hidden = !(data.runs && data.runs.length);
      })
      .catch(function () { /* the list is a convenience; progress polling reports connectivity */ })
      .then(function () { setTimeout(loadRuns, 15000); });
  }

  poll();
})();
`;

const BODY = `
<header>
  <h1>FileMaker reimport <span id="run-id" class="mono"></span></h1>
  <span id="conn" class="conn">connecting…</span>
</header>
<main>
  <section id="run">
    <div class="head">
      <span class="name">run</span>
      <span id="run-status" class="badge">loading</span>
      <a id="run-link" class="mono"></a>
      <span id="run-dry" class="flag pause"></span>
    </div>
    <div class="facts">
      <span>current phase <b id="run-phase">–</b></span>
      <span>downloaded from FileMaker <b id="run-bytes">–</b></span>
      <span>transfer budget <b id="run-budget">–</b></span>
      <span>settings <b id="run-settings">–</b></span>
    </div>
    <div class="facts">
      <span>sign-off <b id="run-signoff">–</b></span>
      <span>certificate <code id="run-certificate" class="mono"></code></span>
    </div>
    <div id="run-error" class="error"></div>
    <ul id="phases" class="tree"></ul>
  </section>
  <section id="runs" hidden>
    <h2>Recent reimport runs</h2>
    <table class="runs">
      <thead><tr><th>run</th><th>status</th><th>started</th><th>closed</th></tr></thead>
      <tbody id="runs-body"></tbody>
    </table>
  </section>
</main>`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>reimport dashboard</title>
<style>${STYLE}</style>
</head>
<body>${BODY}
<script>${SCRIPT}</script>
</body>
</html>
`;

/**
 * Same-origin only; the inline style and script are allowed by hash, not by 'unsafe-inline'. Progress bar widths are
 * set through the CSSOM (`element.style.width`), which style-src does not restrict.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
