// The chat's script: starting conversations (/chat), and on a conversation page (/chat/{id})
// asking questions with the answer streamed over Server-Sent Events read from a fetch (so the
// request can carry the CSRF token and be aborted), sources, feedback, rename and delete.
//
// Everything shown is built with createElement and textContent; answers are rendered by
// markdown.js, which does the same. The server keeps an answer cut short by "Stop".
'use strict';

(() => {
  const api = (...args) => window.Ajutant.api(...args);
  const pageAlert = (message) => window.Ajutant.alert(message);

  function make(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  // ------------------------------------------------------------ starting a conversation

  async function startConversation(card, button, ask) {
    const assistantId = card.dataset.assistantId;
    const buttons = card.querySelectorAll('button');
    for (const b of buttons) b.disabled = true;
    pageAlert('');
    try {
      const conversation = await api('POST', '/api/v1/conversations', { assistant_id: assistantId });
      let target = `/chat/${encodeURIComponent(conversation.id)}`;
      if (ask) target += `?ask=${encodeURIComponent(ask)}`;
      window.location.assign(target);
    } catch (error) {
      pageAlert(error.message);
      for (const b of buttons) b.disabled = false;
      button.focus();
    }
  }

  document.addEventListener('click', (event) => {
    const button = event.target.closest ? event.target.closest('.assistant-card button') : null;
    if (!button || button.disabled) return;
    const card = button.closest('.assistant-card');
    if (button.classList.contains('start')) {
      startConversation(card, button, '');
    } else if (button.classList.contains('starter')) {
      startConversation(card, button, button.textContent.trim());
    }
  });

  // ------------------------------------------------------------ sources

  function citationButton(citation) {
    const button = make('button', 'citation', `[${citation.index}] ${citation.title || ''}`);
    button.type = 'button';
    button.dataset.index = String(citation.index);
    button.dataset.title = citation.title || '';
    button.dataset.location = citation.location || '';
    button.dataset.quote = citation.quote || '';
    button.dataset.url = sourceUrl(citation.url) || '';
    return button;
  }

  // Replaces a message's list of sources.
  function showCitations(article, citations) {
    let list = article.querySelector('ul.citations');
    if (!citations || citations.length === 0) {
      if (list) list.remove();
      return;
    }
    if (!list) {
      list = make('ul', 'citations');
      list.setAttribute('aria-label', 'Sources');
      const anchor = article.querySelector('.meta, .feedback');
      article.insertBefore(list, anchor);
    }
    list.replaceChildren(...citations.map((c) => {
      const item = make('li');
      item.appendChild(citationButton(c));
      return item;
    }));
  }

  // Only http(s) sources become links.
  function sourceUrl(raw) {
    if (!raw) return null;
    try {
      const url = new URL(raw);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  function openCitation(button) {
    const dialog = document.querySelector('dialog.citation-dialog');
    if (!dialog) return;
    const data = button.dataset;
    dialog.querySelector('.citation-title').textContent = `[${data.index}] ${data.title || 'Source'}`;
    const location = dialog.querySelector('.citation-location');
    location.textContent = data.location || '';
    location.hidden = !data.location;
    const quote = dialog.querySelector('.citation-quote');
    quote.textContent = data.quote || '';
    quote.hidden = !data.quote;
    const source = dialog.querySelector('.citation-source');
    const link = dialog.querySelector('.citation-link');
    const url = sourceUrl(data.url);
    if (url) {
      link.href = url;
      source.hidden = false;
    } else {
      link.removeAttribute('href');
      source.hidden = true;
    }
    dialog.returnFocusTo = button;
    if (typeof dialog.showModal === 'function') {
      dialog.showModal();
    } else {
      dialog.setAttribute('open', '');
    }
    dialog.querySelector('.citation-close').focus();
  }

  function closeCitation(dialog) {
    if (typeof dialog.close === 'function') dialog.close();
    else dialog.removeAttribute('open');
  }

  document.addEventListener('click', (event) => {
    if (!event.target.closest) return;
    const citation = event.target.closest('button.citation');
    if (citation) {
      openCitation(citation);
      return;
    }
    const close = event.target.closest('.citation-close');
    if (close) closeCitation(close.closest('dialog'));
  });

  document.addEventListener('close', (event) => {
    const dialog = event.target;
    if (dialog instanceof HTMLDialogElement && dialog.returnFocusTo) {
      dialog.returnFocusTo.focus();
      dialog.returnFocusTo = null;
    }
  }, true);

  // ------------------------------------------------------------ feedback

  const THANKS = "Thank you: sent to the assistant's owners.";
  const THANKS_ESCALATED = 'Thank you: reported to IT operations.';

  // The answer's feedback widget, copied from the page's <template>.
  function feedbackWidget(messageId) {
    const template = document.getElementById('feedback-template');
    if (!template) return null;
    const widget = template.content.querySelector('.feedback').cloneNode(true);
    // The template's ids are `fb--name`; each widget needs its own for its labels.
    for (const node of widget.querySelectorAll('[id^="fb--"]')) {
      node.id = node.id.replace('fb--', `fb-${messageId}-`);
    }
    for (const label of widget.querySelectorAll('label[for^="fb--"]')) {
      label.htmlFor = label.htmlFor.replace('fb--', `fb-${messageId}-`);
    }
    return widget;
  }

  // Everything the widget says, sent whole: feedback replaces the viewer's earlier feedback.
  function feedbackBody(widget) {
    const pressed = widget.querySelector('.rate[aria-pressed="true"]');
    const form = widget.querySelector('form.feedback-form');
    const minutes = form.elements.time_saved_minutes.value.trim();
    const comment = form.elements.comment.value.trim();
    const body = {
      helpful: pressed ? pressed.dataset.helpful === 'true' : null,
      categories: Array.from(form.querySelectorAll('input[name="categories"]:checked')).map((c) => c.value),
      serious: form.elements.serious.checked,
    };
    if (minutes !== '') body.time_saved_minutes = Number(minutes);
    if (comment !== '') body.comment = comment;
    return body;
  }

  async function sendFeedback(widget, trigger) {
    const status = widget.querySelector('.feedback-status');
    const body = feedbackBody(widget);
    if (body.time_saved_minutes !== undefined &&
        !(Number.isInteger(body.time_saved_minutes) && body.time_saved_minutes >= 0 && body.time_saved_minutes <= 1440)) {
      status.classList.add('form-error');
      status.textContent = 'Minutes saved must be a whole number from 0 to 1440.';
      return false;
    }
    // The answer's id is its article's: the widget is only offered once the answer is stored.
    const messageId = widget.closest('article.message').dataset.messageId;
    const path = `/api/v1/messages/${encodeURIComponent(messageId)}/feedback`;
    trigger.disabled = true;
    try {
      const saved = await api('POST', path, body);
      status.classList.remove('form-error');
      status.textContent = saved && saved.escalated ? THANKS_ESCALATED : THANKS;
      return true;
    } catch (error) {
      status.classList.add('form-error');
      status.textContent = `Your feedback was not sent: ${error.message}`;
      return false;
    } finally {
      trigger.disabled = false;
    }
  }

  document.addEventListener('click', async (event) => {
    const rate = event.target.closest ? event.target.closest('.feedback .rate') : null;
    if (!rate) return;
    const widget = rate.closest('.feedback');
    const buttons = widget.querySelectorAll('.rate');
    const before = Array.from(buttons).map((b) => b.getAttribute('aria-pressed'));
    for (const b of buttons) b.setAttribute('aria-pressed', String(b === rate));
    if (!(await sendFeedback(widget, rate))) {
      buttons.forEach((b, i) => b.setAttribute('aria-pressed', before[i]));
    }
  });

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains('feedback-form')) return;
    event.preventDefault();
    sendFeedback(form.closest('.feedback'), form.querySelector('button[type="submit"]'));
  });

  // ------------------------------------------------------------ the conversation page

  const page = document.querySelector('.chat-main.conversation');
  if (!page) return;
  const conversationId = page.dataset.conversationId;
  const thread = page.querySelector('section.thread');
  const composer = page.querySelector('form.composer');
  const input = composer.elements.content;
  const sendButton = composer.querySelector('button.send');
  const stopButton = composer.querySelector('button.stop');
  const assistantName = page.dataset.assistantName || 'Assistant';
  let running = null; // the turn being streamed: { controller }

  function nearBottom() {
    const scroller = document.scrollingElement || document.documentElement;
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 160;
  }

  function reveal(node, force) {
    if ((force || nearBottom()) && node.scrollIntoView) node.scrollIntoView({ block: 'end' });
  }

  function article(role) {
    const node = make('article', `message ${role}`);
    node.appendChild(make('h2', 'sr-only', role === 'user' ? 'You' : assistantName));
    return node;
  }

  function userMessage(content) {
    const node = article('user');
    node.appendChild(make('div', 'content', content));
    return node;
  }

  // One answer as it streams in: Markdown re-rendered at most once per animation frame.
  class Answer {
    constructor() {
      this.node = article('assistant');
      this.node.classList.add('streaming');
      this.node.setAttribute('aria-busy', 'true');
      this.content = make('div', 'content');
      this.content.setAttribute('data-markdown', '');
      this.content.setAttribute('data-rendered', '');
      this.node.appendChild(this.content);
      this.text = '';
      this.sources = [];
      this.frame = 0;
    }

    add(delta) {
      this.text += delta;
      if (!this.frame) this.frame = window.requestAnimationFrame(() => this.render());
    }

    render() {
      if (this.frame) window.cancelAnimationFrame(this.frame);
      this.frame = 0;
      const follow = nearBottom();
      this.content.replaceChildren(window.AjutantMarkdown.render(this.text));
      // The sources cited so far, as the stored answer will list them.
      showCitations(this.node, this.sources.filter((s) => this.text.includes(`[${s.index}]`)));
      if (follow) reveal(this.node, true);
    }

    // The stream is over, however it ended.
    settle(status) {
      this.render();
      this.node.classList.remove('streaming');
      this.node.removeAttribute('aria-busy');
      if (status) this.node.dataset.status = status;
    }

    identify(id) {
      if (id) this.node.dataset.messageId = id;
    }

    fail(message) {
      const error = make('p', 'form-error', message);
      error.setAttribute('role', 'alert');
      this.node.insertBefore(error, this.node.querySelector('ul.citations'));
    }

    meta() {
      const meta = make('p', 'meta');
      const now = new Date();
      const time = make('time', null, now.toLocaleString());
      time.dateTime = now.toISOString();
      meta.appendChild(time);
      this.node.appendChild(meta);
    }

    offerFeedback() {
      const id = this.node.dataset.messageId;
      if (!id || this.node.querySelector('.feedback')) return;
      const widget = feedbackWidget(id);
      if (widget) this.node.appendChild(widget);
    }
  }

  // Splits Server-Sent Events out of a growing text buffer; returns the unparsed rest.
  function takeEvents(buffer, handle) {
    const normalised = buffer.replace(/\r\n?/g, '\n');
    const blocks = normalised.split('\n\n');
    const rest = blocks.pop();
    for (const block of blocks) {
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') name = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length === 0) continue;
      let payload = null;
      try {
        payload = JSON.parse(data.join('\n'));
      } catch (_) {
        continue;
      }
      handle(name, payload || {});
    }
    return rest;
  }

  // The id of the answer the server stored after the question `userMessageId`, which it writes
  // once it notices the reader left; looked for a few times.
  async function storedAnswerId(userMessageId) {
    for (let attempt = 0; attempt < 6; attempt += 1) {
      await new Promise((resolve) => window.setTimeout(resolve, 250 * (attempt + 1)));
      try {
        const detail = await api('GET', `/api/v1/conversations/${encodeURIComponent(conversationId)}`);
        const messages = detail.messages || [];
        const question = messages.findIndex((m) => m.id === userMessageId);
        const answer = messages.slice(question + 1).find((m) => m.role === 'assistant');
        if (question >= 0 && answer) return answer;
      } catch (_) {
        return null;
      }
    }
    return null;
  }

  function setRunning(turn) {
    running = turn;
    stopButton.disabled = !turn;
    sendButton.disabled = Boolean(turn);
    thread.setAttribute('aria-busy', turn ? 'true' : 'false');
    if (!turn && document.activeElement === stopButton) input.focus();
  }

  async function ask(question) {
    if (running) return;
    pageAlert('');
    const asked = userMessage(question);
    const answer = new Answer();
    thread.appendChild(asked);
    thread.appendChild(answer.node);
    reveal(answer.node, true);
    const controller = new AbortController();
    setRunning({ controller });
    let userMessageId = null;
    let finished = false;

    const handle = (name, data) => {
      if (name === 'start') {
        userMessageId = data.user_message_id || null;
        if (userMessageId) asked.dataset.messageId = userMessageId;
      } else if (name === 'citations') {
        answer.sources = Array.isArray(data.citations) ? data.citations : [];
      } else if (name === 'delta') {
        if (typeof data.text === 'string') answer.add(data.text);
      } else if (name === 'done') {
        finished = true;
        const message = data.message || {};
        if (typeof message.content === 'string') answer.text = message.content;
        answer.identify(message.id);
        answer.settle(message.status || 'complete');
        // The stored answer lists the sources it actually cites.
        showCitations(answer.node, Array.isArray(message.citations) ? message.citations : []);
        answer.meta();
        answer.offerFeedback();
      } else if (name === 'error') {
        finished = true;
        answer.identify(data.message_id);
        answer.settle(data.status || 'failed');
        answer.fail(data.message || 'The answer could not be completed.');
        answer.meta();
        if (data.status === 'partial') answer.offerFeedback();
      }
    };

    let response;
    try {
      response = await fetch(`/api/v1/conversations/${encodeURIComponent(conversationId)}/messages`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: {
          accept: 'text/event-stream',
          'content-type': 'application/json',
          'x-csrf-token': window.Ajutant.csrf(),
        },
        body: JSON.stringify({ content: question }),
        signal: controller.signal,
      });
    } catch (error) {
      // Nothing came back (no network, or stopped at once): the question can be sent again.
      asked.remove();
      answer.node.remove();
      setRunning(null);
      restore(question);
      if (error.name !== 'AbortError') pageAlert(`The question could not be sent: ${error.message}`);
      return;
    }

    if (!response.ok) {
      // Refused before any answer: the problem document says why (switched off, limits...).
      let detail = `${response.status} ${response.statusText}`.trim();
      try {
        const problem = await response.json();
        detail = problem.detail || problem.title || detail;
      } catch (_) { /* not JSON: the status line will do */ }
      asked.remove();
      answer.node.remove();
      setRunning(null);
      restore(question);
      pageAlert(detail);
      return;
    }

    try {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = takeEvents(buffer + decoder.decode(value, { stream: true }), handle);
      }
      takeEvents(`${buffer + decoder.decode()}\n\n`, handle);
      if (!finished) {
        answer.settle('partial');
        answer.fail('The connection was lost before the answer was complete.');
      }
    } catch (error) {
      if (error.name === 'AbortError') {
        answer.settle('partial');
        answer.node.appendChild(make('p', 'hint stopped', 'Stopped. The answer so far is kept.'));
        answer.meta();
        // The composer is free at once; the stored answer is looked up meanwhile.
        setRunning(null);
        // The server stores what was written; feedback needs the stored answer's id.
        if (userMessageId) {
          const stored = await storedAnswerId(userMessageId);
          if (stored && stored.status !== 'failed') {
            answer.identify(stored.id);
            answer.offerFeedback();
          } else if (stored) {
            answer.identify(stored.id);
          }
        }
      } else if (!finished) {
        answer.settle('partial');
        answer.fail(`The answer was interrupted: ${error.message}`);
      }
    } finally {
      // Only this turn's: after a stop another question may already be running.
      if (running && running.controller === controller) setRunning(null);
    }
  }

  // Puts a question that was not asked back into the box, unless something else was typed.
  function restore(question) {
    if (input.value.trim() === '') input.value = question;
    input.focus();
  }

  composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question || running) return;
    input.value = '';
    input.focus();
    ask(question);
  });

  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (typeof composer.requestSubmit === 'function') composer.requestSubmit();
      else composer.dispatchEvent(new Event('submit', { cancelable: true }));
    }
  });

  stopButton.addEventListener('click', () => {
    if (running) running.controller.abort();
  });

  // ------------------------------------------------------------ rename, delete

  const renameButton = page.querySelector('button.rename');
  if (renameButton) {
    renameButton.addEventListener('click', async () => {
      const current = renameButton.dataset.title || '';
      const title = window.prompt('New title for this conversation', current);
      if (title === null || title.trim() === '' || title.trim() === current) return;
      pageAlert('');
      try {
        await api('PATCH', `/api/v1/conversations/${encodeURIComponent(conversationId)}`, { title: title.trim() });
        window.location.reload();
      } catch (error) {
        pageAlert(error.message);
      }
    });
  }

  const deleteButton = page.querySelector('button.delete');
  if (deleteButton) {
    deleteButton.addEventListener('click', async () => {
      if (!window.confirm('Delete this conversation and all its messages? This cannot be undone.')) return;
      pageAlert('');
      try {
        await api('DELETE', `/api/v1/conversations/${encodeURIComponent(conversationId)}`);
        window.location.assign('/chat');
      } catch (error) {
        pageAlert(error.message);
      }
    });
  }

  // ------------------------------------------------------------ a starter's question

  // Asked once: the address loses `ask` before the question goes, so a reload does not repeat
  // it; and only into an empty conversation, so a link cannot slip a question into one.
  const params = new URLSearchParams(window.location.search);
  const starter = params.get('ask');
  if (starter !== null) {
    params.delete('ask');
    const rest = params.toString();
    window.history.replaceState(null, '', window.location.pathname + (rest ? `?${rest}` : ''));
    if (starter.trim() !== '' && !thread.querySelector('article.message')) ask(starter.trim());
  }
})();
