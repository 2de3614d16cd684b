// The API keys page, beyond what app.js does: the expiry sent as a time from "Expires in
// days", the new key shown once, and revoking with an optional reason.
'use strict';

(() => {
  const DAY_MS = 24 * 60 * 60 * 1000;

  // Capture phase: runs before app.js reads the form, so the expiry is in it.
  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.id !== 'create-key') return;
    const days = form.querySelector('#key-days');
    const expires = form.querySelector('input[name="expires_at"]');
    if (!days || !expires) return;
    const count = days.value.trim() === '' ? NaN : Number(days.value);
    expires.value = Number.isFinite(count) && count > 0
      ? new Date(Date.now() + count * DAY_MS).toISOString()
      : '';
  }, true);

  // The API answers a new key once; show it, and nothing of it is kept in the page's form.
  document.addEventListener('api-key-created', (event) => {
    const created = event.detail || {};
    const out = document.getElementById('new-key');
    const note = document.getElementById('new-key-note');
    if (note) note.hidden = false;
    if (out) {
      out.textContent = typeof created.key === 'string' ? created.key : '';
      // Focus on the key, so it can be selected and copied by keyboard.
      out.setAttribute('tabindex', '-1');
      out.focus();
    }
    if (event.target instanceof HTMLFormElement) event.target.reset();
  });

  document.addEventListener('click', async (event) => {
    const button = event.target.closest ? event.target.closest('button[data-revoke-key]') : null;
    if (!button) return;
    event.preventDefault();
    const id = button.dataset.revokeKey;
    // One dialog: Cancel keeps the key, OK revokes it with whatever reason was typed.
    const reason = window.prompt(
      `Revoke the key ${id}? Anything using it is refused from the next request on.\n\nReason (optional):`,
      '');
    if (reason === null) return;
    const query = reason.trim() ? `?reason=${encodeURIComponent(reason.trim())}` : '';
    button.disabled = true;
    Ajutant.alert('', button);
    try {
      await Ajutant.api('DELETE', `/api/v1/admin/api-keys/${encodeURIComponent(id)}${query}`);
      window.location.reload();
    } catch (error) {
      Ajutant.alert(error.message, button);
      button.disabled = false;
    }
  });
})();
