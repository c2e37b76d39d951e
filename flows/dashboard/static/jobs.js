// Polls running regeneration jobs of this page and reloads once one finishes, so the new
// version (and the re-mixed output) appears without the operator refreshing by hand.
(function () {
  const running = Array.from(document.querySelectorAll('.job-running[data-job]'));
  if (!running.length) return;
  const poll = async () => {
    for (const el of running) {
      const r = await fetch('/api/jobs/' + el.dataset.job);
      if (!r.ok) continue;
      const j = await r.json();
      if (j.state !== 'running') { location.reload(); return; }
    }
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 1000);
})();
