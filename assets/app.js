// drswitch: the little script the pages use (no inline scripts: the
// Content-Security-Policy forbids them). Everything works without it except
// the live refresh and the copy buttons.
document.addEventListener("submit", function (e) {
  var form = e.target;
  var question = form.getAttribute("data-confirm");
  // A forced failover asks a different question: it may leave both copies running.
  var force = form.querySelector("input[name='force']");
  if (force && force.checked && form.hasAttribute("data-confirm-forced")) {
    question = form.getAttribute("data-confirm-forced");
  }
  if (question && !window.confirm(question)) {
    e.preventDefault();
  }
}, true);
document.addEventListener("click", function (e) {
  var button = e.target.closest("[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    var old = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = old; }, 1500);
  });
});
// Keep a growing task log scrolled to its end unless the reader scrolled up.
document.addEventListener("htmx:beforeSwap", function (e) {
  var log = document.getElementById("task-log");
  if (log) log.dataset.stick = (log.scrollTop + log.clientHeight >= log.scrollHeight - 8) ? "1" : "0";
});
document.addEventListener("htmx:afterSwap", function () {
  var log = document.getElementById("task-log");
  if (log && log.dataset.stick !== "0") log.scrollTop = log.scrollHeight;
});
// The VM picker fills the VMID field it names.
document.addEventListener("change", function (e) {
  var target = e.target.getAttribute && e.target.getAttribute("data-fills");
  if (!target || !e.target.value) return;
  var field = document.querySelector("[name='" + target + "']");
  if (field) field.value = e.target.value;
});
// A live refresh that failed leaves the old figures on screen: say so
// instead of showing them as current.
function staleBanner(show) {
  var banner = document.getElementById("stale-banner");
  if (!show) { if (banner) banner.remove(); return; }
  if (!banner) {
    banner = document.createElement("div");
    banner.id = "stale-banner";
    banner.className = "flash error stale";
    banner.setAttribute("role", "alert");
    var main = document.querySelector("main");
    if (main) main.insertBefore(banner, main.firstChild);
  }
  banner.textContent = "Live updates stopped at " + new Date().toLocaleTimeString() +
    " (drswitch did not answer); what this page shows may be out of date. Reload to try again.";
}
document.addEventListener("htmx:responseError", function () { staleBanner(true); });
document.addEventListener("htmx:sendError", function () { staleBanner(true); });
document.addEventListener("htmx:afterRequest", function (e) {
  if (e.detail && e.detail.successful) staleBanner(false);
});
// A notification target's form shows the settings of the chosen kind only
// (without JavaScript all of them show; the server takes the chosen kind's).
function showTargetKind(form) {
  var kind = form.querySelector("select[name='kind']");
  if (!kind) return;
  form.querySelectorAll("fieldset[data-kind]").forEach(function (set) {
    set.hidden = set.getAttribute("data-kind") !== kind.value;
  });
}
document.addEventListener("change", function (e) {
  var form = e.target.closest && e.target.closest("#target-form");
  if (form && e.target.name === "kind") showTargetKind(form);
});
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("target-form");
  if (form) showTargetKind(form);
});
