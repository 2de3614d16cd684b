// Ajutant's shared page script. Pages are rendered on the server; this sends the changes a
// page makes to the JSON API (with the session's CSRF token) and shows what went wrong.
//
// Declarative: <form data-api="POST" data-path="/api/v1/..." data-after="reload"> sends its
// fields as JSON; <button data-api="DELETE" data-path="..."> sends one request. Field types:
// data-type="number" | "bool" | "json" | "lines" | "csv" | "array" (checked boxes of one name);
// data-omit-empty leaves an empty field out, data-null-empty sends null; a name with dots
// ("access.scope") builds nested objects. data-confirm asks first; data-after is "reload",
// "redirect:/path/{field}" (filled from the answer), "event:<name>" (dispatched on the form
// with the answer), or "none".
'use strict';

const Ajutant = (() => {
  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : '';
  };

  function problemMessage(response, data) {
    if (data && typeof data === 'object') {
      if (data.detail) return data.detail;
      if (data.error && data.error.message) return data.error.message;
      if (data.title) return data.title;
    }
    return `${response.status} ${response.statusText}`.trim();
  }

  async function api(method, path, body, extraHeaders) {
    const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
    if (method !== 'GET' && method !== 'HEAD') init.headers['x-csrf-token'] = csrf();
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    Object.assign(init.headers, extraHeaders || {});
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = text; }
    }
    if (!response.ok) {
      const error = new Error(problemMessage(response, data));
      error.status = response.status;
      error.data = data;
      throw error;
    }
    return data;
  }

  // Shows `message` in the alert nearest to `near` (its form's, else the page's).
  function alert(message, near) {
    let box = near && near.closest ? near.closest('form, section, dialog') : null;
    box = box ? box.querySelector('.form-error, [role="alert"]') : null;
    if (!box) box = document.querySelector('main [role="alert"]');
    if (!box) return;
    box.textContent = message;
    box.hidden = !message;
    if (message && box.scrollIntoView) box.scrollIntoView({ block: 'nearest' });
  }

  function setPath(target, name, value) {
    const parts = name.split('.');
    let node = target;
    for (const part of parts.slice(0, -1)) {
      if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
      node = node[part];
    }
    node[parts[parts.length - 1]] = value;
  }

  function fieldValue(field) {
    const type = field.dataset.type || '';
    const raw = field.value;
    switch (type) {
      case 'bool': return field.checked;
      case 'number': return raw.trim() === '' ? undefined : Number(raw);
      case 'json': return raw.trim() === '' ? undefined : JSON.parse(raw);
      case 'lines': return raw.split('\n').map((l) => l.trim()).filter(Boolean);
      case 'csv': return raw.split(',').map((l) => l.trim()).filter(Boolean);
      default: return raw;
    }
  }

  // The form's named fields as a JSON object.
  function formValue(form) {
    const value = {};
    const arrays = {};
    for (const field of form.elements) {
      if (!field.name || field.disabled || field.type === 'submit' || field.type === 'button') continue;
      if (field.dataset.type === 'array') {
        arrays[field.name] = arrays[field.name] || [];
        if (field.checked) arrays[field.name].push(field.value);
        continue;
      }
      if ((field.type === 'radio') && !field.checked) continue;
      if (field.type === 'checkbox' && field.dataset.type !== 'bool') {
        if (field.checked) setPath(value, field.name, field.value);
        continue;
      }
      let v = fieldValue(field);
      if (v === '' && field.hasAttribute('data-omit-empty')) continue;
      if (v === '' && field.hasAttribute('data-null-empty')) v = null;
      if (v === undefined) continue;
      setPath(value, field.name, v);
    }
    for (const [name, list] of Object.entries(arrays)) setPath(value, name, list);
    return value;
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, (_, key) =>
      encodeURIComponent(data && data[key] !== undefined ? String(data[key]) : ''));
  }

  function after(element, data) {
    const what = element.dataset.after || 'reload';
    if (what === 'reload') {
      window.location.reload();
    } else if (what.startsWith('redirect:')) {
      window.location.assign(fill(what.slice('redirect:'.length), data));
    } else if (what.startsWith('event:')) {
      element.dispatchEvent(new CustomEvent(what.slice('event:'.length), { detail: data, bubbles: true }));
    }
  }

  async function send(element, method, path, body) {
    if (element.dataset.confirm && !window.confirm(element.dataset.confirm)) return;
    const busy = element.tagName === 'FORM' ? element.querySelector('[type="submit"]') : element;
    if (busy) busy.disabled = true;
    alert('', element);
    try {
      const data = await api(method, path, body);
      after(element, data);
    } catch (error) {
      alert(error.message, element);
    } finally {
      if (busy) busy.disabled = false;
    }
  }

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
    event.preventDefault();
    let body;
    try {
      body = formValue(form);
    } catch (error) {
      alert(`A field is not valid JSON: ${error.message}`, form);
      return;
    }
    send(form, form.dataset.api, form.dataset.path, body);
  });

  document.addEventListener('click', (event) => {
    const button = event.target.closest ? event.target.closest('button[data-api]') : null;
    if (!button) return;
    event.preventDefault();
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    send(button, button.dataset.api, button.dataset.path, body);
  });

  // Times are sent as UTC; show them in the reader's zone.
  function localTimes(root) {
    for (const el of (root || document).querySelectorAll('time[datetime]')) {
      const when = new Date(el.getAttribute('datetime'));
      if (!Number.isNaN(when.getTime())) {
        el.textContent = when.toLocaleString();
        el.title = el.getAttribute('datetime');
      }
    }
  }
  document.addEventListener('DOMContentLoaded', () => localTimes());

  return { api, alert, formValue, localTimes, csrf };
})();
window.Ajutant = Ajutant;
