// DOM for the conversation: a person's bubble (text, images, voice and what was heard) and an answer
// (Markdown, reasoning collapsed, citation cards, the agent trace). Text goes in through textContent;
// only renderMarkdown's escaped output is set as HTML.

import { icon } from './icons.js';
import { renderMarkdown, safeUrl } from './markdown.js';

/** createElement with a class, attributes and children (strings become text). */
export function el(tag, { cls, attrs = {}, text } = {}, ...children) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  for (const child of children) if (child) node.append(child);
  return node;
}

/** A person's message. `parts`: {text}, {image: dataUrl}, {audio: blobUrl} in order. */
export function userBubble(parts) {
  const bubble = el('article', { cls: 'message user', attrs: { 'aria-label': 'You said' } });
  for (const part of parts) {
    if (part.text) bubble.append(el('p', { cls: 'text', text: part.text }));
    if (part.image) bubble.append(el('img', { cls: 'thumb', attrs: { src: part.image, alt: part.name || 'attached image' } }));
    if (part.audio !== undefined) {
      const voice = el('div', { cls: 'voice' }, icon('mic'), el('span', { text: 'voice message' }));
      if (part.audio) voice.append(el('audio', { attrs: { controls: '', src: part.audio, 'aria-label': 'your recording' } }));
      bubble.append(voice);
    }
  }
  return bubble;
}

/** Show what the server heard in a voice message. */
export function showTranscripts(bubble, transcripts) {
  for (const heard of transcripts) {
    const text = heard.text ? `“${heard.text}”` : '(nothing was heard)';
    bubble.append(el('p', { cls: 'transcript' }, el('span', { cls: 'label', text: 'Heard: ' }), text));
  }
}

function formatPrice(meta) {
  const price = Number(meta.price);
  if (!Number.isFinite(price)) return '';
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: String(meta.currency || 'USD') }).format(price);
  } catch {
    return `${price.toFixed(2)} ${meta.currency ?? ''}`.trim(); // an unknown currency code
  }
}

/** One citation card: products show their price, shared posts their author, other sources their source. */
export function citationCard(citation) {
  const meta = citation.meta ?? {};
  const kind = citation.kind || 'source';
  const card = el('li', { cls: `card card-${kind.replace(/[^\w-]/g, '')}`, attrs: { 'data-kind': kind } });
  const href = citation.url ? safeUrl(citation.url) : null;
  const title = citation.title || citation.id || 'source';
  const heading = el('p', { cls: 'card-title' }, el('span', { cls: 'card-index', text: `[${citation.index}] ` }));
  heading.append(href ? el('a', { attrs: { href: citation.url, target: '_blank', rel: 'noopener noreferrer' }, text: title }) : title);
  card.append(heading);
  let detail = citation.source || '';
  if (kind === 'product') detail = [formatPrice(meta), citation.source].filter(Boolean).join(' · ');
  else if (kind === 'post') detail = meta.author ? `by ${meta.author}` : citation.source || '';
  if (detail) card.append(el('p', { cls: 'card-detail', text: detail }));
  return card;
}

function traceItem(step) {
  const who = step.agent === null || step.agent === undefined ? 'Aggregator' : `Agent ${step.agent}`;
  const seconds = Number(step.ended_s) - Number(step.started_s);
  const tokens = step.usage?.completion_tokens;
  const facts = [step.phase, Number.isFinite(seconds) ? `${seconds.toFixed(1)} s` : '', tokens ? `${tokens} tokens` : '']
    .filter(Boolean).join(' · ');
  const item = el('li', { cls: 'trace-step' }, el('p', { cls: 'trace-head' }, el('strong', { text: who }), ` — ${facts}`));
  if (step.text) item.append(el('pre', { cls: 'trace-text', text: step.text }));
  if (step.answer) item.append(el('p', { cls: 'trace-answer', text: `Answer: ${step.answer}` }));
  return item;
}

/** One answer as it streams in. */
export class AnswerView {
  constructor(mode) {
    this.content = '';
    this.reasoning = '';
    this.pending = false;
    this.node = el('article', { cls: 'message assistant streaming', attrs: { 'aria-label': 'Ember answered', 'aria-busy': 'true' } });
    this.meta = el('p', { cls: 'meta', text: mode.replace(/^ember-/, '') });
    this.node.append(this.meta);
    this.body = el('div', { cls: 'markdown' });
    this.typing = el('p', { cls: 'typing muted', text: 'Ember is thinking…' });
    this.node.append(this.body, this.typing);
  }

  addContent(text) {
    this.content += text;
    this.schedule();
  }

  addReasoning(text) {
    if (!this.reasoningBox) {
      this.reasoningText = el('div', { cls: 'reasoning-body' });
      this.reasoningLabel = el('summary', { text: 'Thinking…' });
      this.reasoningBox = el('details', { cls: 'reasoning' }, this.reasoningLabel, this.reasoningText);
      this.node.insertBefore(this.reasoningBox, this.body);
    }
    this.reasoning += text;
    this.schedule();
  }

  /** Re-render at most once a frame, however fast tokens arrive. */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => this.paint());
  }

  paint() {
    this.pending = false;
    this.body.innerHTML = renderMarkdown(this.content);
    if (this.reasoningText) this.reasoningText.innerHTML = renderMarkdown(this.reasoning);
    if (this.content || this.reasoning) this.typing.textContent = '';
    this.onPaint?.();
  }

  setCitations(citations) {
    if (!citations?.length) return;
    this.citations?.remove();
    const list = el('ol', { cls: 'citations', attrs: { 'aria-label': 'Sources' } });
    for (const citation of citations) list.append(citationCard(citation));
    this.citations = el('section', { cls: 'sources' }, el('h3', { cls: 'small-title', text: 'Sources' }), list);
    this.node.append(this.citations);
  }

  /** ember-auto said where it sent the request, and why. */
  setRoute(route) {
    if (!route?.target) return;
    const effort = route.effort ? ` (${route.effort})` : '';
    this.meta.textContent = `auto → ${String(route.target).replace(/^ember-/, '')}${effort}`;
    this.meta.title = route.reason || '';
  }

  setTrace(steps) {
    if (!steps?.length) return;
    this.trace?.remove();
    const list = el('ol', { cls: 'trace-steps' });
    for (const step of steps) list.append(traceItem(step));
    const label = `Agent trace (${steps.length} pass${steps.length === 1 ? '' : 'es'})`;
    this.trace = el('details', { cls: 'trace' }, el('summary', { text: label }), list);
    this.node.append(this.trace);
  }

  /** The answer is over: `how` is a finish reason, "stopped" or "error". */
  finish(how, message = '') {
    this.paint();
    this.node.classList.remove('streaming');
    this.node.setAttribute('aria-busy', 'false');
    this.node.dataset.finish = how;
    this.typing.remove();
    if (this.reasoningLabel) {
      const words = this.reasoning.trim().split(/\s+/).filter(Boolean).length;
      this.reasoningLabel.textContent = `Reasoning (${words} words)`;
    }
    const notes = { stopped: 'Stopped.', length: 'The answer reached its length limit.', error: message };
    if (notes[how]) this.node.append(el('p', { cls: how === 'error' ? 'note error-note' : 'note', text: notes[how] }));
    if (how === 'error' && !this.content && !this.reasoning) this.node.classList.add('failed');
  }
}

/** A stored message, as the conversations API returns it. */
export function storedMessage(message, mode) {
  if (message.role === 'user') return userBubble([{ text: message.content }]);
  const view = new AnswerView(mode || 'ember');
  view.content = message.content || '';
  if (message.reasoning_content) view.addReasoning(message.reasoning_content);
  view.finish(message.finish_reason === 'cancelled' ? 'stopped' : message.finish_reason || 'stop');
  return view.node;
}
