"""One self-contained HTML page: the prompt coloured by where each answer token came from.

No network, no files beside it: the maps travel as JSON inside the page and the summary plots as data URIs. Pick an
answer token (or "whole answer") and a map; the prompt's tokens are shaded by that row, red for what raised the
token's probability and blue for what lowered it (attribution), or by weight (rollout).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

_STYLE = """
body{font:14px/1.5 system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
.tokens span{white-space:pre-wrap;border-radius:3px;padding:1px 0;cursor:default}
.answer span{cursor:pointer;border:1px solid #ccc;margin:1px;padding:1px 3px;display:inline-block}
.answer span.on{border-color:#000;background:#ffe9a8}
.answer span.key{font-weight:bold;text-decoration:underline}
table{border-collapse:collapse} td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
img{max-width:100%;border:1px solid #eee;margin:8px 0}
.note{color:#666;font-size:12px}
"""

_SCRIPT = """
const data = JSON.parse(document.getElementById('maps').textContent);
let row = -1, map = Object.keys(data.maps)[0];
const prompt = document.getElementById('prompt'), answer = document.getElementById('answer');
data.prompt_tokens.forEach((t, i) => { const s = document.createElement('span'); s.textContent = t;
  s.dataset.i = i; prompt.appendChild(s); });
const whole = document.createElement('span'); whole.textContent = 'whole answer'; whole.onclick = () => pick(-1);
answer.appendChild(whole);
data.answer_tokens.forEach((t, i) => { const s = document.createElement('span'); s.textContent = t;
  if (data.key_rows.includes(i)) s.className = 'key'; s.onclick = () => pick(i); answer.appendChild(s); });
const select = document.getElementById('map');
Object.keys(data.maps).forEach(k => { const o = document.createElement('option'); o.value = o.textContent = k;
  select.appendChild(o); });
select.onchange = () => { map = select.value; paint(); };
function pick(i) { row = i; paint(); }
function values() {
  const m = data.maps[map];
  if (row >= 0) return m.rows[row];
  return m.rows[0].map((_, j) => m.rows.reduce((a, r) => a + (m.signed ? Math.abs(r[j]) : r[j]), 0));
}
function paint() {
  [...answer.children].forEach((s, i) => s.classList.toggle('on', i - 1 === row));
  const v = values(), signed = data.maps[map].signed && row >= 0;
  const skip = data.sink && !data.maps[map].signed ? 1 : 0;  // the sink: attention and rollout only
  const top = Math.max(1e-12, ...v.slice(skip).map(Math.abs));
  [...prompt.children].forEach((s, j) => {
    const a = Math.min(1, Math.abs(v[j]) / top);
    s.style.background = (signed && v[j] < 0) ? `rgba(38,110,210,${a})` : `rgba(220,50,47,${a})`;
    s.title = `${JSON.stringify(data.prompt_tokens[j])}: ${v[j].toPrecision(3)}`;
  });
  document.getElementById('picked').textContent = row < 0 ? 'the whole answer' :
    JSON.stringify(data.answer_tokens[row]);
}
paint();
"""


def _image(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{encoded}">'


def render_page(summary: dict, maps: dict[str, dict], key_rows: list[int], sink: bool, images: list[Path]) -> str:
    payload = {
        "prompt_tokens": summary["prompt_tokens"],
        "answer_tokens": summary["answer_tokens"],
        "maps": maps,
        "key_rows": key_rows,
        "sink": sink,
    }
    embedded = json.dumps(payload).replace("</", "<\\/")
    facts = ""
    for label, score in summary.get("grounding", {}).items():
        shares = (
            ", ".join(
                f"{name} {score[key]:.2f}"
                for key, name in (("attribution_share", "attribution"), ("rollout_share", "rollout"))
                if score[key] is not None
            )
            or "the answer states none of the key facts"
        )
        facts += (
            f"<tr><td>{html.escape(label)}</td><td>{html.escape(', '.join(score['facts']))}</td>"
            f"<td>{html.escape(' '.join(score['key_tokens']))}</td><td>{shares}</td>"
            f"<td>{score['chance']:.2f}</td></tr>"
        )
    grounding = (
        "<h2>Grounding on the passage</h2><table><tr><th>model</th><th>key facts</th><th>key tokens</th>"
        f"<th>share on the passage</th><th>chance</th></tr>{facts}</table>"
        if facts
        else ""
    )
    answers = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(text)}</td></tr>"
        for label, text in summary["own_answers"].items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>finch explain: {html.escape(summary["model"])}</title>
<style>{_STYLE}</style></head><body>
<h1>finch explain — {html.escape(summary["model"])}</h1>
<p class="note">Answer token shaded: {"<b>key-fact tokens</b> are bold; " if key_rows else ""}pick one to see which
prompt tokens it came from. Now showing <b id="picked"></b> on
<select id="map"></select>.{" In rollout maps the first token, an attention sink, sets no colour." if sink else ""}</p>
<h2>Answer</h2><div class="answer tokens" id="answer"></div>
<h2>Prompt</h2><div class="tokens" id="prompt"></div>
{grounding}
<h2>Each model's own greedy answer</h2><table>{answers}</table>
<h2>Plots</h2>{"".join(_image(p) for p in images)}
<script type="application/json" id="maps">{embedded}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
