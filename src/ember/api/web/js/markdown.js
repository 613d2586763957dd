// A small Markdown renderer for answers. Safety first: every character of the source is HTML-escaped;
// the only markup in the output is what this file writes itself, and links keep only http(s), mailto
// and same-page targets. Supports what chat answers use: paragraphs (single newlines kept), headings,
// emphasis, inline and fenced code, links, lists (nested by indentation), block quotes, tables, rules.
// It is not CommonMark; it is tolerant of half-written input, as a streamed answer always is.

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const HOLE = '\u0000'; // marks a stored fragment in inline text; stripped from the input first

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** A link target we allow, escaped for an attribute, or null. */
export function safeUrl(url) {
  const trimmed = String(url).trim();
  return /^(https?:\/\/|mailto:|#|\/(?!\/))/i.test(trimmed) ? escapeHtml(trimmed) : null;
}

function link(href, label) {
  return `<a href="${href}" target="_blank" rel="noopener noreferrer">${label}</a>`;
}

/** Emphasis on already-escaped text. */
function emphasis(text) {
  return text
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/__(?=\S)([\s\S]*?\S)__/g, '<strong>$1</strong>')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>')
    .replace(/(^|[^*\w])\*(?=[^\s*])([^*]*?[^\s*])\*(?![*\w])/g, '$1<em>$2</em>')
    .replace(/(^|[^_\w])_(?=[^\s_])([^_]*?[^\s_])_(?![_\w])/g, '$1<em>$2</em>');
}

/** One run of inline text (raw source) to HTML. */
export function inline(source) {
  const stored = [];
  const keep = (html) => `${HOLE}${stored.push(html) - 1}${HOLE}`;
  let text = source
    .replace(/`([^`\n]+)`/g, (_, code) => keep(`<code>${escapeHtml(code)}</code>`))
    .replace(/\[([^\]\n]+)\]\(([^()\s]+(?:\([^()\s]*\))?[^()\s]*)\)/g, (whole, label, url) => {
      const href = safeUrl(url);
      return href ? keep(link(href, emphasis(escapeHtml(label)))) : whole;
    })
    .replace(/\bhttps?:\/\/[^\s<>()"'`]+[^\s<>()"'`.,;:!?]/g, (url) => keep(link(safeUrl(url), escapeHtml(url))));
  text = emphasis(escapeHtml(text));
  return text.replace(new RegExp(`${HOLE}(\\d+)${HOLE}`, 'g'), (_, i) => stored[Number(i)]);
}

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^\s{0,3}>\s?/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_RULE = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function indentOf(line) {
  return line.match(/^\s*/)[0].replace(/\t/g, '    ').length;
}

function startsBlock(line, next) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line)
    || isTableStart(line, next);
}

function isTableStart(line, next) {
  return line.includes('|') && next !== undefined && next.includes('-') && TABLE_RULE.test(next);
}

function cells(row) {
  return row.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((cell) => inline(cell.trim()));
}

function fence(lines, i) {
  const [, marker, lang] = FENCE.exec(lines[i]);
  const body = [];
  let j = i + 1;
  while (j < lines.length && !lines[j].trim().startsWith(marker)) body.push(lines[j++]);
  const cls = lang ? ` class="language-${escapeHtml(lang)}"` : '';
  return [`<pre><code${cls}>${escapeHtml(body.join('\n'))}</code></pre>`, j + 1];
}

function table(lines, i) {
  const head = cells(lines[i]).map((c) => `<th>${c}</th>`).join('');
  const rows = [];
  let j = i + 2;
  for (; j < lines.length && lines[j].includes('|') && lines[j].trim(); j++) {
    rows.push(`<tr>${cells(lines[j]).map((c) => `<td>${c}</td>`).join('')}</tr>`);
  }
  return [`<div class="table"><table><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table></div>`, j];
}

function quote(lines, i) {
  const body = [];
  let j = i;
  while (j < lines.length && QUOTE.test(lines[j])) body.push(lines[j++].replace(QUOTE, ''));
  return [`<blockquote>${blocks(body)}</blockquote>`, j];
}

/** A list: items at the first item's indentation; deeper lines belong to the item above (nesting). */
function list(lines, i) {
  const base = indentOf(lines[i]);
  const ordered = /\d/.test(ITEM.exec(lines[i])[2]);
  const items = [];
  let j = i;
  while (j < lines.length) {
    const line = lines[j];
    const item = ITEM.exec(line);
    if (item && indentOf(line) === base && /\d/.test(item[2]) === ordered) {
      items.push([item[3]]);
    } else if (line.trim() && indentOf(line) > base) {
      items[items.length - 1].push(line.slice(Math.min(base + 2, indentOf(line))));
    } else if (!line.trim() && j + 1 < lines.length && indentOf(lines[j + 1]) > base) {
      items[items.length - 1].push('');
    } else {
      break;
    }
    j++;
  }
  const start = ordered ? Number.parseInt(ITEM.exec(lines[i])[2], 10) : 1;
  const tag = ordered ? 'ol' : 'ul';
  const open = ordered && start !== 1 ? `<ol start="${start}">` : `<${tag}>`;
  const html = items.map((body) => `<li>${body.length === 1 ? inline(body[0]) : blocks(body, true)}</li>`);
  return [`${open}${html.join('')}</${tag}>`, j];
}

function paragraph(lines, i, tight) {
  const body = [lines[i]];
  let j = i + 1;
  while (j < lines.length && lines[j].trim() && !startsBlock(lines[j], lines[j + 1])) body.push(lines[j++]);
  const html = body.map((line) => inline(line.trim())).join('<br>');
  return [tight ? html : `<p>${html}</p>`, j];
}

/** Block-level rendering of `lines`; `tight` leaves a lone paragraph unwrapped (inside list items). */
function blocks(lines, tight = false) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let step;
    if (!line.trim()) {
      i++;
      continue;
    } else if (FENCE.test(line)) step = fence(lines, i);
    else if (HEADING.test(line)) {
      const [, hashes, title] = HEADING.exec(line);
      const level = Math.min(6, hashes.length + 2); // the page owns h1 and h2
      step = [`<h${level}>${inline(title)}</h${level}>`, i + 1];
    } else if (RULE.test(line)) step = ['<hr>', i + 1];
    else if (QUOTE.test(line)) step = quote(lines, i);
    else if (ITEM.test(line)) step = list(lines, i);
    else if (isTableStart(line, lines[i + 1])) step = table(lines, i);
    else step = paragraph(lines, i, tight && out.length === 0);
    out.push(step[0]);
    i = step[1];
  }
  return out.join('');
}

/** Markdown source to safe HTML. */
export function renderMarkdown(source) {
  const text = String(source ?? '').replaceAll(HOLE, '').replace(/\r\n?/g, '\n');
  return blocks(text.split('\n'));
}
