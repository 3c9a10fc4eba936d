"""The dashboard's single page: it renders whatever state the /events stream pushes (no reloads)."""

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ACGS dashboard</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}td,th{padding:.25em .6em;text-align:left;border-bottom:1px solid #eee;vertical-align:top}
.bar{background:#eee;width:10em;height:.8em;display:inline-block;vertical-align:middle}
.bar span{display:block;height:100%;background:#3a7}.bar.eps span{background:#c83}
.good{color:#2a7a2a}.bad{color:#b22}.wait{color:#a70}small{color:#666}
#status{float:right;color:#666}
</style></head><body>
<h1>ACGS — namespace <span id="ns">…</span><span id="status">connecting…</span></h1>
<h2>Training</h2><table id="training"></table>
<h2>Model versions</h2><table id="versions"></table>
<h2>Rollouts</h2><div id="rollouts"></div>
<h2>Flywheel</h2><table id="flywheel"></table>
<script>
const GOOD=["Succeeded","Ready","Healthy","Running","Idle","Winner","True"],BAD=["Failed","Degraded","Invalid","Rejected"];
const esc=v=>v==null?"":String(v).replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const cls=p=>GOOD.includes(p)?"good":BAD.includes(p)?"bad":"wait";
const phase=p=>`<span class="${cls(p)}">${esc(p||"—")}</span>`;
const bar=(frac,extra)=>`<span class="bar ${extra||""}"><span style="width:${Math.max(0,Math.min(1,frac||0))*100}%"></span></span>`;
const num=(v,d)=>v==null?"—":Number(v).toFixed(d);
function table(el,head,rows){el.innerHTML="<tr>"+head.map(h=>`<th>${h}</th>`).join("")+"</tr>"+
  (rows.length?rows.join(""):`<tr><td colspan="${head.length}"><small>none</small></td></tr>`)}
function render(s){
  document.getElementById("ns").textContent=s.namespace;
  table(document.getElementById("training"),["TrainingJob","Phase","Progress","ε spent / budget","Loss","Produced"],
    s.trainingJobs.map(t=>`<tr data-name="${esc(t.name)}"><td>${esc(t.name)}</td><td>${phase(t.phase)}</td>
      <td>${bar((t.percent||0)/100)} ${num(t.percent,0)}% ${t.totalSteps?`<small>step ${esc(t.step??0)}/${esc(t.totalSteps)}</small>`:""}</td>
      <td>${t.targetEpsilon?bar((t.epsilon||0)/t.targetEpsilon,"eps"):""} ${num(t.epsilon,2)} / ${t.targetEpsilon??"no DP"}</td>
      <td>${num(t.loss,3)}</td><td>${esc(t.modelVersion)}</td></tr>`));
  table(document.getElementById("versions"),["ModelVersion","Version","Stage","Phase","Lineage","Compliance","Accuracy","ε"],
    s.modelVersions.map(m=>`<tr data-name="${esc(m.name)}"><td>${esc(m.name)}</td><td>${esc(m.version)}</td><td>${esc(m.stage)}</td>
      <td>${phase(m.phase)}</td><td><small>${m.parent?esc(m.parent)+" → ":""}${m.trainingJob?"trained by "+esc(m.trainingJob):""}</small></td>
      <td>${num(m.complianceScore,3)}</td><td>${num(m.accuracy,3)}</td><td>${num(m.epsilon,2)}</td></tr>`));
  document.getElementById("rollouts").innerHTML=s.deployments.length?s.deployments.map(d=>`
    <h3 data-name="${esc(d.name)}">${esc(d.name)} ${phase(d.phase)}</h3>
    <p>active <b>${esc(d.activeColor||"—")}</b> ${esc(d.activeModelVersion||"")} · preview ${esc(d.previewColor||"—")} ${esc(d.previewModelVersion||"")}
     · desired ${esc(d.desiredModelVersion||"—")} · ready ${esc(d.readyReplicas??0)}
     · gate compliance ≥ ${esc(d.gates.minComplianceScore??"")}
     · serving: ${d.serving.requests!=null?esc(d.serving.requests)+" requests, "+esc(d.serving.errors)+" errors, mean "+num((d.serving.meanLatencySeconds||0)*1000,1)+" ms":"<small>no data</small>"}</p>
    ${d.heldBack?`<p class="bad">held back: ${esc(d.heldBack.modelVersion)} (${esc(d.heldBack.reason)}) ${esc(d.heldBack.message)}</p>`:""}
    <table>${d.conditions.map(c=>`<tr><td>${esc(c.type)}</td><td>${phase(c.status)}</td><td>${esc(c.reason)}</td><td><small>${esc(c.message)}</small></td></tr>`).join("")}</table>
    <p><small>history: ${d.history.map(h=>`${esc(h.time)} ${esc(h.action)} ${esc(h.modelVersion)}${h.reason?" ("+esc(h.reason)+")":""}`).join(" · ")||"—"}</small></p>`).join(""):"<small>none</small>";
  table(document.getElementById("flywheel"),["FlywheelPolicy","Deployment","Phase","Records","Last run","Recommends","Candidates"],
    s.flywheelPolicies.map(f=>`<tr data-name="${esc(f.name)}"><td>${esc(f.name)}</td><td>${esc(f.deployment)}</td><td>${phase(f.phase)}</td>
      <td>${esc(f.recordsSeen??0)}</td><td>${esc(f.lastRun||"—")}</td><td>${esc(f.recommendation||"—")}</td>
      <td><small>${f.candidates.map(c=>`${esc(c.name)}: ${esc(c.state||"")}`).join(", ")}</small></td></tr>`));
}
const source=new EventSource("events");
source.onmessage=e=>{render(JSON.parse(e.data));
  document.getElementById("status").textContent="live · updated "+new Date().toLocaleTimeString()};
source.onerror=()=>{document.getElementById("status").textContent="reconnecting…"};
</script></body></html>
"""
