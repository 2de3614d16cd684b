// Collection pages: uploads documents (multipart, which app.js does not send) and follows
// ingestion jobs until they end, then reloads the page to show the outcome.
//
// <form class="upload-form" data-upload-path="/api/v1/collections/ID/documents"> with a file
// input named "file" and an optional textarea "acl" (group ids, one per line) is sent as
// FormData with the session's CSRF token. A job started elsewhere (the "Sync now" button's
// data-after="event:ajutant-job") is followed the same way; and <article data-job-id
// data-job-running> rows on the page are polled every second while they run.
'use strict';

(() => {
  const POLL_MS = 1000;

  function statusNear(element) {
    const box = element.closest('form, section');
    return box ? box.querySelector('.job-status') : null;
  }

  function say(element, text) {
    if (element) element.textContent = text;
  }

  // Fills a job's row on the page, if it is shown.
  function showProgress(job) {
    const row = document.querySelector(`article[data-job-id="${CSS.escape(job.id)}"]`);
    if (!row) return;
    const badge = row.querySelector('[data-job-field="status"]');
    if (badge) {
      badge.textContent = job.status;
      badge.className = `badge ${job.status}`;
    }
    const bar = row.querySelector('[data-job-field="progress"]');
    if (bar) {
      bar.max = Math.max(job.total, 1);
      bar.value = job.processed;
      bar.textContent = `${job.processed} of ${job.total}`;
    }
    say(row.querySelector('[data-job-field="counts"]'), `${job.processed} of ${job.total} processed`);
  }

  function describe(job) {
    const counts = `${job.processed} of ${job.total} processed`;
    if (job.status === 'queued') return `Queued: ${counts}.`;
    if (job.status === 'running') return `Running: ${counts}.`;
    const failed = job.failed ? `, ${job.failed} failed` : '';
    return `Finished (${job.status}): ${counts}${failed}.`;
  }

  const sleep = (ms) => new Promise((resolve) => { window.setTimeout(resolve, ms); });

  // Polls the job until it has ended, showing its progress; then reloads the page with the
  // job in the address so its outcome (and each failed document's reason) is shown.
  async function follow(jobId, statusElement) {
    for (;;) {
      let job;
      try {
        job = await window.Ajutant.api('GET', `/api/v1/ingestion-jobs/${encodeURIComponent(jobId)}`);
      } catch (error) {
        say(statusElement, `Cannot follow the job: ${error.message}`);
        return;
      }
      say(statusElement, describe(job));
      showProgress(job);
      if (job.status !== 'queued' && job.status !== 'running') break;
      await sleep(POLL_MS);
    }
    const url = new URL(window.location.href);
    url.searchParams.set('job', jobId);
    window.location.assign(url.pathname + url.search);
  }

  async function upload(form) {
    const input = form.querySelector('input[type="file"]');
    const files = input ? Array.from(input.files) : [];
    const status = statusNear(form);
    window.Ajutant.alert('', form);
    if (files.length === 0) {
      window.Ajutant.alert('Choose one or more files first.', form);
      return;
    }
    const body = new FormData();
    for (const file of files) body.append('file', file, file.name);
    const aclField = form.querySelector('[name="acl"]');
    const acl = aclField ? aclField.value.split('\n').map((l) => l.trim()).filter(Boolean) : [];
    if (acl.length > 0) body.append('acl', JSON.stringify(acl));
    const button = form.querySelector('[type="submit"]');
    if (button) button.disabled = true;
    say(status, `Uploading ${files.length} file(s)…`);
    try {
      // No content-type header: the browser sets the multipart boundary itself.
      const response = await fetch(form.dataset.uploadPath, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { accept: 'application/json', 'x-csrf-token': window.Ajutant.csrf() },
        body,
      });
      const text = await response.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
      if (!response.ok) {
        const detail = data && (data.detail || data.title);
        throw new Error(detail || `${response.status} ${response.statusText}`.trim());
      }
      say(status, describe(data));
      await follow(data.id, status);
    } catch (error) {
      say(status, '');
      window.Ajutant.alert(error.message, form);
    } finally {
      if (button) button.disabled = false;
    }
  }

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.uploadPath) return;
    event.preventDefault();
    upload(form);
  });

  // A job started through app.js (e.g. "Sync now").
  document.addEventListener('ajutant-job', (event) => {
    const job = event.detail;
    if (!job || !job.id) return;
    const status = statusNear(event.target);
    say(status, describe(job));
    follow(job.id, status);
  });

  // Jobs already running when the page was rendered.
  document.addEventListener('DOMContentLoaded', () => {
    for (const row of document.querySelectorAll('article[data-job-id][data-job-running]')) {
      follow(row.dataset.jobId, null);
    }
  });
})();
