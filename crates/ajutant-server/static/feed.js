// IT operations' live feed on the escalations page: Server-Sent Events from
// /api/v1/ops/escalations/stream (same origin, the session cookie). An `escalation` adds an
// item to #live-feed, an `incident` updates that incident's row in the table, a `switch` adds a
// line about the kill switch, `lagged` says to reload. Everything is built with createElement
// and textContent: incidents carry what users typed and assistant ids from configuration.
'use strict';

(() => {
  const MAX_ITEMS = 50;
  const RETRY_MS = 5000;
  const STATES = ['open', 'acknowledged', 'resolved'];

  function start() {
    const list = document.getElementById('live-feed');
    const status = document.getElementById('feed-status');
    if (!list) return;
    const say = (text) => { if (status) status.textContent = text; };
    if (!window.EventSource) {
      say('Live updates are not available in this browser: reload the page to see new escalations.');
      return;
    }

    function add(item) {
      list.prepend(item);
      while (list.children.length > MAX_ITEMS) list.lastElementChild.remove();
    }

    function parse(event) {
      try { return JSON.parse(event.data); } catch (_) { return null; }
    }

    function time(value) {
      const el = document.createElement('time');
      el.setAttribute('datetime', String(value || ''));
      const when = new Date(String(value || ''));
      el.textContent = Number.isNaN(when.getTime()) ? String(value || '') : when.toLocaleString();
      return el;
    }

    function text(value) {
      return document.createTextNode(String(value));
    }

    function escalation(incident) {
      const id = String(incident.id || '');
      const li = document.createElement('li');
      li.className = 'feed-item';
      li.dataset.incidentId = id;
      const assistant = document.createElement('strong');
      assistant.className = 'feed-assistant';
      assistant.textContent = String(incident.assistant_id || '');
      li.append(text('Escalation on '), assistant);
      const categories = Array.isArray(incident.categories) ? incident.categories.map(String) : [];
      const cats = document.createElement('span');
      cats.className = 'feed-categories';
      cats.textContent = categories.length ? categories.join(', ') : 'no category';
      li.append(text(': '), cats);
      if (incident.serious) {
        const badge = document.createElement('span');
        badge.className = 'badge serious';
        badge.textContent = 'serious';
        li.append(text(' '), badge);
      }
      li.append(text(`, reported by ${String(incident.reported_by_name || 'someone')}, `), time(incident.opened_at), text('. '));
      const link = document.createElement('a');
      link.href = `/console/incidents/${encodeURIComponent(id)}`;
      link.textContent = 'Open incident';
      li.append(link);
      add(li);
    }

    function incidentChanged(incident) {
      const id = String(incident.id || '');
      const state = String(incident.status || '');
      for (const row of document.querySelectorAll('tr[data-incident-id]')) {
        if (row.dataset.incidentId !== id) continue;
        const cell = row.querySelector('.incident-status');
        if (!cell) continue;
        const badge = document.createElement('span');
        badge.className = STATES.includes(state) ? `badge ${state}` : 'badge';
        badge.textContent = state;
        cell.replaceChildren(badge);
      }
    }

    function switched(view) {
      const li = document.createElement('li');
      li.className = 'feed-switch';
      const target = String(view.target || '');
      const id = view.id ? ` ${String(view.id)}` : '';
      li.textContent = `Kill switch: ${target}${id} → ${String(view.state || '')}`;
      if (view.changed_by_name) li.textContent += ` (by ${String(view.changed_by_name)})`;
      add(li);
    }

    function lagged() {
      const li = document.createElement('li');
      li.className = 'feed-lagged';
      li.textContent = 'Some events were missed: reload the page to see everything.';
      add(li);
    }

    let source = null;
    function connect() {
      source = new EventSource('/api/v1/ops/escalations/stream');
      source.addEventListener('open', () => say('Live'));
      source.addEventListener('ready', () => say('Live'));
      source.addEventListener('escalation', (e) => { const d = parse(e); if (d) escalation(d); });
      source.addEventListener('incident', (e) => { const d = parse(e); if (d) incidentChanged(d); });
      source.addEventListener('switch', (e) => { const d = parse(e); if (d) switched(d); });
      source.addEventListener('lagged', lagged);
      source.addEventListener('error', () => {
        say('Reconnecting…');
        // The browser retries by itself unless the server refused the stream; then we do.
        if (source.readyState === EventSource.CLOSED) {
          source.close();
          window.setTimeout(connect, RETRY_MS);
        }
      });
    }
    connect();
    window.addEventListener('pagehide', () => { if (source) source.close(); });
    window.addEventListener('pageshow', (event) => { if (event.persisted) connect(); });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
