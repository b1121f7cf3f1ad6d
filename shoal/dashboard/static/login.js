// A link carrying #token=...: post it once, keep it only as an HttpOnly cookie, and
// take it off the address bar (and out of the history) before anything else runs.
(function () {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match) return;
  const token = decodeURIComponent(match[1]);
  history.replaceState(null, "", location.pathname + location.search);
  fetch("/login", {method: "POST", headers: {"Content-Type": "application/json"},
                   body: JSON.stringify({token: token}), credentials: "same-origin"})
    .then(function (r) {
      if (r.ok) { location.replace("/"); }
      else { document.getElementById("login-error").textContent = "That token was refused."; }
    });
})();
