// The kill switches page: "Switch back on" asks why (the API requires a reason) and then sends
// the switch to the JSON API through app.js's helper, with the session's CSRF token.
'use strict';

(() => {
  document.addEventListener('click', async (event) => {
    const button = event.target.closest ? event.target.closest('button.revive') : null;
    if (!button) return;
    event.preventDefault();
    const target = button.dataset.target || '';
    const id = button.dataset.id || '';
    const what = id ? `${target} ${id}` : `the ${target}`;
    const reason = window.prompt(`Why switch ${what} back on?`);
    if (reason === null) return;
    if (!reason.trim()) {
      window.Ajutant.alert('Say why: a reason is required.', button);
      return;
    }
    const body = { target, state: 'active', reason: reason.trim() };
    if (id) body.id = id;
    button.disabled = true;
    window.Ajutant.alert('', button);
    try {
      await window.Ajutant.api('POST', '/api/v1/kill-switches', body);
      window.location.reload();
    } catch (error) {
      window.Ajutant.alert(error.message, button);
    } finally {
      button.disabled = false;
    }
  });
})();
