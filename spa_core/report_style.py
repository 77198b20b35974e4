"""The HTML report's stylesheet (inlined into the page; system fonts only)."""

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f4f6f9; --kept:#3563d9; --gone:#f0a39b;
        --good:#0f7b4f; --panel:#ffffff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1180px; margin:0 auto; padding:28px 28px 40px; }
header { margin-bottom:18px; }
.kicker { text-transform:uppercase; letter-spacing:.08em; font-size:12px; color:var(--kept); font-weight:600; }
h1 { font-size:28px; margin:4px 0 6px; word-break:break-all; }
h2 { font-size:18px; margin:28px 0 6px; }
h3 { font-size:15px; margin:4px 0 8px; }
.facts { color:var(--muted); margin:0; }
.facts b { color:var(--ink); }
.muted { color:var(--muted); font-size:12px; }
p.muted { font-size:13px; margin:0 0 10px; }
.ok { color:var(--good); margin:4px 0; }
.panel { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:14px 16px;
         box-shadow:0 1px 2px rgba(16,24,40,.04); }
section.panel { margin-top:24px; }
.scroll { overflow-x:auto; padding:0; }
.cards { display:grid; grid-template-columns:repeat(4, 1fr); gap:14px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:14px 16px 12px;
        box-shadow:0 1px 2px rgba(16,24,40,.04); }
.card-label { font-size:12px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted); font-weight:600; }
.card-value { font-size:26px; font-weight:650; margin-top:4px; white-space:nowrap; }
.delta { font-size:14px; font-weight:600; color:var(--good); margin-left:8px; }
.delta.worse { color:#b42318; }
.card-from { color:var(--muted); font-size:13px; margin-bottom:6px; }
.exact { font:12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color:var(--ink);
         margin-top:6px; overflow-wrap:anywhere; }
.note { font-size:11px; color:var(--muted); margin-top:4px; }
.pill.worse { background:#fdecea; color:#b42318; }
.pill { display:inline-block; background:#e7f6ee; color:var(--good); border-radius:999px; padding:1px 10px;
        font:600 13px system-ui, sans-serif; }
svg.chart text { font-size:12px; fill:#374151; }
svg.chart text.label { font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:11.5px; }
svg.chart text.num { font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:11.5px; }
svg.chart text.same { fill:#9ca3af; }
svg.chart text.head, svg.chart text.legend { font-size:12px; fill:var(--muted); font-weight:600; }
svg.chart text.tick { font-size:10.5px; fill:#9ca3af; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; vertical-align:top; padding:8px 10px; border-bottom:1px solid var(--line); }
thead th { font-size:12px; color:var(--muted); font-weight:600; background:#fafbfc; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
table.groups tbody tr:hover { background:#fafbff; }
.keepbar { height:5px; background:var(--gone); border-radius:3px; margin-top:5px; min-width:70px; }
.keepbar span { display:block; height:5px; background:var(--kept); border-radius:3px; }
.flow { font-family:ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12px; line-height:1.6;
        padding-left:38px; text-indent:-38px; }
.role { display:inline-block; width:38px; text-indent:0; color:var(--muted); font-family:system-ui, sans-serif; font-size:11px;
        text-transform:uppercase; letter-spacing:.04em; }
details { margin-top:4px; }
summary { cursor:pointer; color:var(--kept); font-size:12px; }
ul.nodes, ul.members { margin:4px 0; padding-left:18px; font:11.5px/1.5 ui-monospace, Menlo, Consolas, monospace; }
ul.members { columns:2; color:var(--muted); }
.stats { font-size:11px; color:var(--muted); white-space:nowrap; }
.key { display:inline-block; width:9px; height:9px; border-radius:2px; margin:0 3px 0 8px; vertical-align:-1px; }
.key.kept { background:var(--kept); } .key.gone { background:var(--gone); }
table.plain td { font-size:13px; }
table.plain + h3 { margin-top:22px; }
td.names { font:12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap:anywhere; }
code { font:12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background:#f3f4f6;
       padding:1px 5px; border-radius:4px; }
pre.command { background:#111827; color:#e5e7eb; padding:12px 14px; border-radius:8px; overflow-x:auto;
              font:13px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; margin:0 0 16px;
              white-space:pre-wrap; word-break:break-all; }
table.kv th { width:180px; color:var(--muted); font-weight:500; font-size:13px; }
table.kv td, table.kv th { padding:5px 10px; }
dl.options { display:grid; grid-template-columns:repeat(3, 1fr); gap:0 24px; margin:0; }
dl.options div { display:flex; justify-content:space-between; gap:12px; padding:6px 2px; border-bottom:1px solid var(--line); }
dl.options dt { color:var(--muted); font-size:13px; }
dl.options dd { margin:0; text-align:right; overflow-wrap:anywhere; }
.two { display:grid; grid-template-columns:1fr 1fr; gap:24px; }
footer { color:var(--muted); font-size:12px; margin-top:22px; text-align:center; }
@media (max-width: 900px) { .cards { grid-template-columns:repeat(2, 1fr); } dl.options { display:grid; grid-template-columns:repeat(3, 1fr); gap:0 24px; margin:0; }
dl.options div { display:flex; justify-content:space-between; gap:12px; padding:6px 2px; border-bottom:1px solid var(--line); }
dl.options dt { color:var(--muted); font-size:13px; }
dl.options dd { margin:0; text-align:right; overflow-wrap:anywhere; }
.two { grid-template-columns:1fr; } }
@media print { body { background:#fff; } .panel, .card { box-shadow:none; } }
"""
