// The audit trail page: "Verify integrity" asks the API to walk the hash chain and says what
// it found in #verify-result. app.js's buttons only send changes, so this reads the answer.
'use strict';

(() => {
  function sentence(result) {
    if (result && result.status === 'intact') {
      const count = result.records === 1 ? '1 record' : `${result.records} records`;
      return `The audit trail is intact: ${count}, head hash ${result.head}.`;
    }
    if (result && result.status === 'broken') {
      return `The audit trail is broken at record ${result.broken_at}: ${result.reason}. ` +
        `The ${result.records} records before it are intact.`;
    }
    return 'The check gave an answer this page does not understand.';
  }

  document.addEventListener('click', async (event) => {
    const button = event.target.closest ? event.target.closest('#verify-audit') : null;
    if (!button) return;
    const out = document.getElementById('verify-result');
    if (!out) return;
    // Only the verdict goes into the status region; while the check runs it is empty and busy.
    button.disabled = true;
    out.classList.remove('form-error');
    out.textContent = '';
    out.setAttribute('aria-busy', 'true');
    try {
      const result = await Ajutant.api('GET', '/api/v1/audit/verify');
      out.textContent = sentence(result);
      if (!result || result.status !== 'intact') out.classList.add('form-error');
    } catch (error) {
      out.textContent = `The check could not run: ${error.message}`;
      out.classList.add('form-error');
    } finally {
      out.removeAttribute('aria-busy');
      button.disabled = false;
    }
  });
})();
