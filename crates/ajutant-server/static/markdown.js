// Ajutant's Markdown renderer for model answers. Answers are untrusted (a model can be talked
// into writing anything, and documents it quotes can be hostile), so this builds DOM nodes only:
// text goes in through text nodes, elements come from a fixed list, and the only attribute taken
// from the text is a link's address, accepted when it is absolute http:, https: or mailto:.
// Nothing is parsed as HTML (raw HTML stays literal text), images are never loaded (they become
// "[image: alt]"), and bare URLs stay text.
//
// Supported: paragraphs (a single newline is a line break), ATX headings, **strong**, *em*,
// `code`, fenced code blocks, bullet and numbered lists (nested by indentation), blockquotes,
// horizontal rules, [links](https://...), backslash escapes. Anything else stays text.
//
// window.AjutantMarkdown.render(text) returns a DocumentFragment. On DOMContentLoaded every
// [data-markdown] element's text is rendered in place and marked data-rendered.
'use strict';

(() => {
  // Deeper nesting than this (quotes in quotes, emphasis in emphasis) stays text: hostile input
  // cannot make the renderer recurse without bound.
  const MAX_DEPTH = 16;
  // How far a link's text and address are looked for; keeps `[[[[...` from being quadratic.
  const MAX_LABEL = 1000;
  const MAX_DESTINATION = 2048;
  const SAFE_PROTOCOLS = ['http:', 'https:', 'mailto:'];
  const ALLOWED_TAGS = new Set([
    'p', 'br', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'strong', 'em', 'code', 'pre', 'ul', 'ol',
    'li', 'blockquote', 'hr', 'a',
  ]);

  function el(tag) {
    if (!ALLOWED_TAGS.has(tag)) throw new Error(`markdown.js does not create <${tag}>`);
    return document.createElement(tag);
  }

  function text(value) {
    return document.createTextNode(value);
  }

  // The normalised address if it may be a link target, else null.
  function safeUrl(raw) {
    const candidate = raw.trim();
    // Spaces or control characters inside an address are a trick or a mistake, not a link.
    // eslint-disable-next-line no-control-regex
    if (!candidate || /[\s\u0000-\u001f\u007f]/.test(candidate)) return null;
    let url;
    try {
      url = new URL(candidate); // no base: relative addresses are refused
    } catch (_) {
      return null;
    }
    return SAFE_PROTOCOLS.includes(url.protocol) ? url.href : null;
  }

  // ---------------------------------------------------------------- inline

  const PUNCTUATION = /[!-/:-@[-`{-~]/;
  const WORD = /[\p{L}\p{N}]/u;

  function runLength(source, at, char) {
    let end = at;
    while (end < source.length && source[end] === char) end += 1;
    return end - at;
  }

  // The next run of exactly `length` backticks at or after `from`, or -1.
  function closingBackticks(source, from, length) {
    let at = from;
    while (at < source.length) {
      if (source[at] === '`') {
        const run = runLength(source, at, '`');
        if (run === length) return at;
        at += run;
      } else {
        at += 1;
      }
    }
    return -1;
  }

  function codeSpanText(raw) {
    const flat = raw.replace(/\n/g, ' ');
    if (flat.length > 2 && flat.startsWith(' ') && flat.endsWith(' ') && flat.trim() !== '') {
      return flat.slice(1, -1);
    }
    return flat;
  }

  // Where emphasis of `length` `char`s opened before `from` closes: the start of the closing
  // delimiter, or -1. A closer follows a non-space; `_` does not close inside a word.
  function closingDelimiter(source, from, char, length) {
    let at = from;
    while (at < source.length) {
      const c = source[at];
      if (c === '\\') {
        at += 2;
        continue;
      }
      if (c !== char) {
        at += 1;
        continue;
      }
      const run = runLength(source, at, char);
      const end = at + run;
      const before = source[at - 1];
      const after = source[end];
      const flanking = at > from && before !== undefined && !/\s/.test(before);
      const wordAfter = char === '_' && after !== undefined && WORD.test(after);
      if (flanking && !wordAfter && (run === length || (run >= 3 && run > length))) {
        return end - length;
      }
      at = end;
    }
    return -1;
  }

  // `[label](destination "title")` starting at `open` (a `[`): {label, destination, end}.
  function parseLink(source, open) {
    let depth = 0;
    let close = -1;
    const labelLimit = Math.min(source.length, open + MAX_LABEL);
    for (let at = open; at < labelLimit; at += 1) {
      const c = source[at];
      if (c === '\\') {
        at += 1;
      } else if (c === '[') {
        depth += 1;
      } else if (c === ']') {
        depth -= 1;
        if (depth === 0) {
          close = at;
          break;
        }
      }
    }
    if (close < 0 || source[close + 1] !== '(') return null;
    let at = close + 2;
    const limit = Math.min(source.length, at + MAX_DESTINATION);
    while (at < limit && (source[at] === ' ' || source[at] === '\n')) at += 1;
    let destination = '';
    if (source[at] === '<') {
      const end = source.indexOf('>', at + 1);
      if (end < 0 || end > limit) return null;
      destination = source.slice(at + 1, end);
      if (destination.includes('\n') || destination.includes('<')) return null;
      at = end + 1;
    } else {
      let parens = 0;
      const start = at;
      while (at < limit) {
        const c = source[at];
        if (c === '\\' && at + 1 < limit) {
          at += 2;
          continue;
        }
        if (c === ' ' || c === '\n' || c === '\t') break;
        if (c === '(') parens += 1;
        if (c === ')') {
          if (parens === 0) break;
          parens -= 1;
        }
        at += 1;
      }
      destination = source.slice(start, at).replace(/\\([!-/:-@[-`{-~])/g, '$1');
    }
    while (at < limit && (source[at] === ' ' || source[at] === '\n')) at += 1;
    const quote = source[at];
    if (quote === '"' || quote === "'" || quote === '(') {
      const closing = quote === '(' ? ')' : quote;
      const end = source.indexOf(closing, at + 1);
      if (end < 0 || end > limit) return null;
      at = end + 1; // the title is not shown: it would only be a tooltip
      while (at < limit && (source[at] === ' ' || source[at] === '\n')) at += 1;
    }
    if (source[at] !== ')') return null;
    return { label: source.slice(open + 1, close), destination, end: at + 1 };
  }

  // Appends `source`'s inline content to `parent`.
  function inline(source, parent, depth, inLink) {
    let pending = '';
    const flush = () => {
      if (pending) parent.appendChild(text(pending));
      pending = '';
    };
    // Searches that found no closer; a later opener of the same kind would not find one either.
    const hopeless = new Set();
    let at = 0;
    while (at < source.length) {
      const c = source[at];
      if (c === '\\' && at + 1 < source.length && PUNCTUATION.test(source[at + 1])) {
        pending += source[at + 1];
        at += 2;
        continue;
      }
      if (c === '\n') {
        flush();
        parent.appendChild(el('br'));
        at += 1;
        continue;
      }
      if (c === '`') {
        const run = runLength(source, at, '`');
        const key = `\`${run}`;
        const close = hopeless.has(key) ? -1 : closingBackticks(source, at + run, run);
        if (close >= 0) {
          flush();
          const code = el('code');
          code.textContent = codeSpanText(source.slice(at + run, close));
          parent.appendChild(code);
          at = close + run;
        } else {
          hopeless.add(key);
          pending += source.slice(at, at + run);
          at += run;
        }
        continue;
      }
      if (c === '!' && source[at + 1] === '[') {
        const image = parseLink(source, at + 1);
        if (image) {
          // Never loaded: an image could track the reader or exfiltrate the conversation.
          pending += `[image: ${image.label}]`;
          at = image.end;
        } else {
          pending += '!';
          at += 1;
        }
        continue;
      }
      if (c === '[' && !inLink && depth < MAX_DEPTH) {
        const link = parseLink(source, at);
        if (link) {
          flush();
          const href = safeUrl(link.destination);
          if (href) {
            const a = el('a');
            a.href = href;
            a.rel = 'noopener noreferrer';
            a.target = '_blank';
            inline(link.label, a, depth + 1, true);
            parent.appendChild(a);
          } else {
            // Not a protocol we link to: the text alone, without the address.
            inline(link.label, parent, depth + 1, true);
          }
          at = link.end;
          continue;
        }
        pending += '[';
        at += 1;
        continue;
      }
      if ((c === '*' || c === '_') && depth < MAX_DEPTH) {
        const run = runLength(source, at, c);
        const end = at + run;
        const before = source[at - 1];
        const after = source[end];
        const opens = after !== undefined && !/\s/.test(after) &&
          !(c === '_' && before !== undefined && WORD.test(before));
        if (opens && run <= 3) {
          const key = `${c}${run}`;
          const close = hopeless.has(key) ? -1 : closingDelimiter(source, end, c, run);
          if (close >= 0) {
            flush();
            let outer;
            let inner;
            if (run === 3) {
              outer = el('strong');
              inner = el('em');
              outer.appendChild(inner);
            } else {
              outer = el(run === 2 ? 'strong' : 'em');
              inner = outer;
            }
            inline(source.slice(end, close), inner, depth + 1, inLink);
            parent.appendChild(outer);
            at = close + run;
            continue;
          }
          hopeless.add(key);
        }
        pending += source.slice(at, end);
        at = end;
        continue;
      }
      pending += c;
      at += 1;
    }
    flush();
  }

  // ---------------------------------------------------------------- blocks

  const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
  const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$/;
  const RULE = /^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const BULLET = /^( {0,3})([-*+])(?:([ \t]+)(.*))?$/;
  const ORDERED = /^( {0,3})(\d{1,9})([.)])(?:([ \t]+)(.*))?$/;

  const isBlank = (line) => line.trim() === '';
  const indentOf = (line) => line.length - line.replace(/^ +/, '').length;

  function fenceOpening(line) {
    const match = FENCE.exec(line);
    if (!match) return null;
    // A backtick fence's info string may not contain backticks (it would be inline code).
    if (match[2][0] === '`' && match[3].includes('`')) return null;
    return { indent: match[1].length, char: match[2][0], length: match[2].length, info: match[3].trim() };
  }

  function listMarker(line) {
    let match = BULLET.exec(line);
    let ordered = false;
    if (!match) {
      match = ORDERED.exec(line);
      ordered = true;
    }
    if (!match) return null;
    const indent = match[1].length;
    const marker = ordered ? match[2] + match[3] : match[2];
    const spaces = ordered ? match[4] : match[3];
    const content = (ordered ? match[5] : match[4]) || '';
    const pad = spaces && spaces.length <= 4 ? spaces.length : 1;
    return {
      ordered,
      kind: ordered ? match[3] : match[2],
      start: ordered ? Number(match[2]) : 1,
      indent,
      contentIndent: indent + marker.length + pad,
      content: spaces && spaces.length > 4 ? spaces.slice(1) + content : content,
      empty: content.trim() === '',
    };
  }

  // Whether `line` begins a block that ends a paragraph.
  function interrupts(line) {
    if (fenceOpening(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)) return true;
    const marker = listMarker(line);
    return Boolean(marker && !marker.empty && (!marker.ordered || marker.start === 1));
  }

  function fencedCode(lines, start, fence) {
    const pre = el('pre');
    const code = el('code');
    const language = fence.info.split(/\s+/)[0].replace(/[^\w+#.-]/g, '');
    if (language) code.dataset.language = language;
    const body = [];
    let at = start + 1;
    const closing = new RegExp(`^ {0,3}${fence.char === '`' ? '`' : '~'}{${fence.length},}[ \\t]*$`);
    while (at < lines.length && !closing.test(lines[at])) {
      // The fence's own indentation is not part of the code.
      const line = lines[at];
      body.push(line.slice(Math.min(fence.indent, indentOf(line))));
      at += 1;
    }
    code.textContent = body.join('\n');
    pre.appendChild(code);
    // An unclosed fence (an answer still streaming) runs to the end.
    return { node: pre, next: Math.min(at + 1, lines.length) };
  }

  function list(lines, start, depth) {
    const first = listMarker(lines[start]);
    const node = el(first.ordered ? 'ol' : 'ul');
    if (first.ordered && first.start !== 1) node.start = first.start;
    const items = [];
    let current = null;
    let loose = false;
    let blankBefore = false;
    let at = start;
    while (at < lines.length) {
      const line = lines[at];
      const marker = listMarker(line);
      if (marker && marker.ordered === first.ordered && marker.kind === first.kind &&
          marker.indent <= first.indent + 1 && (!current || marker.indent < current.contentIndent)) {
        if (current && blankBefore) loose = true;
        current = { lines: [marker.content], contentIndent: marker.contentIndent };
        items.push(current);
        blankBefore = false;
        at += 1;
        continue;
      }
      if (isBlank(line)) {
        let next = at + 1;
        while (next < lines.length && isBlank(lines[next])) next += 1;
        if (next >= lines.length) break;
        const following = listMarker(lines[next]);
        const sibling = following && following.ordered === first.ordered &&
          following.kind === first.kind && following.indent <= first.indent + 1;
        if (!sibling && indentOf(lines[next]) < current.contentIndent) break;
        for (let blank = at; blank < next; blank += 1) current.lines.push('');
        blankBefore = true;
        at = next;
        continue;
      }
      const indent = indentOf(line);
      if (indent > first.indent) {
        // Inside the item: its continuation, or a nested block.
        if (blankBefore) loose = true;
        current.lines.push(line.slice(Math.min(indent, current.contentIndent)));
        blankBefore = false;
        at += 1;
        continue;
      }
      const previous = current.lines[current.lines.length - 1];
      if (!blankBefore && previous !== undefined && !isBlank(previous) && !interrupts(line)) {
        // A lazy continuation of the item's paragraph.
        current.lines.push(line.trim());
        at += 1;
        continue;
      }
      break;
    }
    for (const item of items) {
      const li = el('li');
      li.appendChild(blocks(item.lines, depth + 1));
      if (!loose) {
        // A tight list's items hold their text directly, not in paragraphs.
        for (const child of Array.from(li.childNodes)) {
          if (child.nodeName === 'P') {
            while (child.firstChild) li.insertBefore(child.firstChild, child);
            li.removeChild(child);
          }
        }
      }
      node.appendChild(li);
    }
    return { node, next: at };
  }

  // Renders `lines` as blocks into a fragment.
  function blocks(lines, depth) {
    const out = document.createDocumentFragment();
    let at = 0;
    while (at < lines.length) {
      const line = lines[at];
      if (isBlank(line)) {
        at += 1;
        continue;
      }
      const fence = fenceOpening(line);
      if (fence) {
        const block = fencedCode(lines, at, fence);
        out.appendChild(block.node);
        at = block.next;
        continue;
      }
      const heading = HEADING.exec(line);
      if (heading) {
        const h = el(`h${heading[1].length}`);
        const content = (heading[2] || '').replace(/(?:^|[ \t]+)#+$/, '');
        inline(content, h, depth, false);
        out.appendChild(h);
        at += 1;
        continue;
      }
      if (RULE.test(line)) {
        out.appendChild(el('hr'));
        at += 1;
        continue;
      }
      if (depth < MAX_DEPTH && QUOTE.test(line)) {
        const quoted = [];
        while (at < lines.length && QUOTE.test(lines[at])) {
          quoted.push(QUOTE.exec(lines[at])[1]);
          at += 1;
        }
        const blockquote = el('blockquote');
        blockquote.appendChild(blocks(quoted, depth + 1));
        out.appendChild(blockquote);
        continue;
      }
      if (depth < MAX_DEPTH && listMarker(line)) {
        const block = list(lines, at, depth);
        out.appendChild(block.node);
        at = block.next;
        continue;
      }
      const paragraph = [line.trim()];
      at += 1;
      while (at < lines.length && !isBlank(lines[at]) && !interrupts(lines[at])) {
        paragraph.push(lines[at].trim());
        at += 1;
      }
      const p = el('p');
      inline(paragraph.join('\n'), p, depth, false);
      out.appendChild(p);
    }
    return out;
  }

  function render(source) {
    const lines = String(source == null ? '' : source)
      .replace(/\r\n?/g, '\n')
      .split('\n')
      .map((line) => line.replace(/^\t+/, (tabs) => '    '.repeat(tabs.length)));
    return blocks(lines, 0);
  }

  // Renders an element's text in place, once.
  function renderInto(element) {
    if (element.hasAttribute('data-rendered')) return;
    const source = element.textContent;
    element.replaceChildren(render(source));
    element.setAttribute('data-rendered', '');
  }

  function renderAll(root) {
    for (const element of (root || document).querySelectorAll('[data-markdown]')) renderInto(element);
  }

  window.AjutantMarkdown = Object.freeze({ render, renderInto, renderAll, safeUrl });

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', () => renderAll());
  } else {
    renderAll();
  }
})();
