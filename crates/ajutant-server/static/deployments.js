// The deployments page: a test call to a chat deployment through the gateway, with the
// session's cookie and CSRF token (app.js's Ajutant.api). The answer and the time it took are
// shown as text, never as HTML.
'use strict';

(() => {
  document.addEventListener('submit', async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains('test-call')) return;
    event.preventDefault();
    const output = form.querySelector('.test-result');
    const button = form.querySelector('[type="submit"]');
    const content = form.querySelector('[name="content"]').value;
    window.Ajutant.alert('', form);
    output.textContent = 'Calling…';
    if (button) button.disabled = true;
    const started = performance.now();
    try {
      const answer = await window.Ajutant.api('POST', '/v1/chat/completions', {
        model: form.dataset.model,
        messages: [{ role: 'user', content }],
        max_tokens: 200,
      });
      const ms = Math.round(performance.now() - started);
      const choice = answer && answer.choices && answer.choices[0];
      const text = choice && choice.message ? String(choice.message.content || '') : '';
      const usage = answer && answer.usage
        ? `, ${answer.usage.prompt_tokens} tokens in, ${answer.usage.completion_tokens} out` : '';
      output.textContent = `Answered in ${ms} ms${usage}:\n\n${text}`;
    } catch (error) {
      const ms = Math.round(performance.now() - started);
      output.textContent = `Failed after ${ms} ms: ${error.message}`;
    } finally {
      if (button) button.disabled = false;
    }
  });
})();
