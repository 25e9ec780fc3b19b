// The case desk's keyboard helpers (progressive: every page works without them).
// - j / k move the focus through the rows of a case list; Enter follows the focused link.
// - Choosing a canned reply puts its text into the reply box (still editable before sending).
(function () {
  "use strict";
  function typing(target) {
    return target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) || target.isContentEditable;
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
    if (event.key !== "j" && event.key !== "k") return;
    var items = Array.prototype.slice.call(document.querySelectorAll("[data-nav-item]"));
    if (!items.length) return;
    var at = items.indexOf(document.activeElement);
    var next = event.key === "j" ? Math.min(at + 1, items.length - 1) : Math.max(at - 1, 0);
    if (at === -1) next = 0;
    items[next].focus();
    event.preventDefault();
  });
  document.addEventListener("DOMContentLoaded", function () {
    var data = document.getElementById("canned-bodies");
    var select = document.querySelector("select[data-canned-target]");
    if (!data || !select) return;
    var bodies = JSON.parse(data.textContent);
    select.addEventListener("change", function () {
      var box = document.getElementById(select.getAttribute("data-canned-target"));
      if (box && bodies[select.value] !== undefined) {
        box.value = bodies[select.value];
        box.focus();
      }
    });
  });
})();
