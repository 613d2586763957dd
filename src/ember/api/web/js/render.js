// DOM for the conversation: a person's bubble (text, images, voice and what was heard) and an answer
// (Markdown with a Copy button on each code block, reasoning collapsed, citation cards, the agent trace, and
// its details: mode, route, tokens and time, shown on hover). Text goes in through textContent;
// only renderMarkdown's escaped output is set as HTML.

import { addCodeCopies } from './copy.js';
import { el } from './dom.js';
import { icon } from './icons.js';
import { renderMarkdown, safeUrl } from './markdown.js';

export { el };

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

/** An answer's details line: the mode (and ember-auto's route, with why), the tokens read and written (from the
 * API's `usage`) and the seconds to the whole answer and to its first token (measured by the page). */
export function answerDetails({ mode, route, usage, seconds, first }) {
  const parts = [`mode ${mode}`];
  if (route?.target) {
    const effort = route.effort ? ` (${route.effort})` : '';
    parts.push(`route ${String(route.target).replace(/^ember-/, '')}${effort}${route.reason ? `: ${route.reason}` : ''}`);
  }
  if (usage) {
    const reasoning = usage.completion_tokens_details?.reasoning_tokens;
    parts.push(`${usage.prompt_tokens} tokens in, ${usage.completion_tokens} out${reasoning ? ` (${reasoning} reasoning)` : ''}`);
  }
  if (Number.isFinite(seconds)) {
    parts.push(`${seconds.toFixed(1)} s${Number.isFinite(first) ? `, first token ${first.toFixed(2)} s` : ''}`);
  }
  return parts.join(' · ');
}

/** One answer as it streams in. */
export class AnswerView {
  constructor(mode) {
    this.content = '';
    this.reasoning = '';
    this.pending = false;
    this.facts = { mode };
    this.node = el('article', { cls: 'message assistant streaming', attrs: { 'aria-label': 'Ember answered', 'aria-busy': 'true' } });
    this.meta = el('p', { cls: 'meta', text: mode.replace(/^ember-/, '') });
    this.details = el('p', { cls: 'answer-details' });
    this.node.append(el('div', { cls: 'answer-head' }, this.meta, this.details));
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
    addCodeCopies(this.body);
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
    this.describe({ route });
  }

  /** Add to the details line (`usage`, `seconds`, `first`, `route`) and show it. */
  describe(facts) {
    Object.assign(this.facts, facts);
    this.details.textContent = answerDetails(this.facts);
    this.details.title = this.details.textContent; // the line may be cut short on a narrow screen
  }

  /** The functions the answer called (the caller runs them): each call's name and arguments. */
  setToolCalls(calls) {
    if (!calls?.length) return;
    this.toolCalls?.remove();
    const list = el('ul', { cls: 'tool-calls', attrs: { 'aria-label': 'Function calls' } });
    for (const call of calls) {
      const text = `${call.function?.name ?? '?'}(${call.function?.arguments ?? ''})`;
      list.append(el('li', { cls: 'tool-call' }, el('code', { text })));
    }
    this.toolCalls = list;
    this.node.insertBefore(list, this.typing.isConnected ? this.typing : null);
  }

  /** Streamed pieces of calls: an id and name first, then arguments, per index. */
  addToolCallPieces(pieces) {
    this.calls ??= [];
    for (const piece of pieces) {
      const call = (this.calls[piece.index] ??= { id: '', function: { name: '', arguments: '' } });
      if (piece.id) call.id = piece.id;
      if (piece.function?.name) call.function.name = piece.function.name;
      call.function.arguments += piece.function?.arguments ?? '';
    }
    this.setToolCalls(this.calls.filter(Boolean));
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
    const notes = {
      stopped: 'Stopped.',
      length: 'The answer reached its length limit.',
      tool_calls: 'Ember asked to call a function; its result is for the caller to send back.',
      error: message,
    };
    if (notes[how]) this.node.append(el('p', { cls: how === 'error' ? 'note error-note' : 'note', text: notes[how] }));
    if (how === 'error' && !this.content && !this.reasoning) this.node.classList.add('failed');
  }
}

const NOT_KEPT = {
  too_large: 'Image not kept: too large (its description was kept).',
  media_storage_off: 'Image not kept: media storage is off (its description was kept).',
};

/** A stored turn of the person: its text, then its parts as the conversations API shows them (a kept image
 * as a thumbnail whose bytes `showStoredImage` fetches from `data-media`; an image not kept and a voice
 * message as a note). */
function storedUserTurn(message) {
  const bubble = userBubble([{ text: message.content }]);
  for (const part of message.parts ?? []) {
    if (part.type === 'audio') {
      bubble.append(el('p', { cls: 'note', text: `Voice message, ${part.duration} s.` }));
    } else if (part.stored) {
      bubble.append(el('img', { cls: 'thumb', attrs: { alt: 'a stored image', 'data-media': part.url } }));
    } else {
      bubble.append(el('p', { cls: 'note', text: NOT_KEPT[part.not_stored] ?? 'Image not kept.' }));
    }
  }
  return bubble;
}

/** A stored message, as the conversations API returns it. */
export function storedMessage(message, mode) {
  if (message.role === 'user') return storedUserTurn(message);
  if (message.role === 'tool') {
    const meta = el('p', { cls: 'meta', text: `function result · ${message.tool_call_id || ''}` });
    return el('article', { cls: 'message tool', attrs: { 'aria-label': 'A function returned' } }, meta,
      el('pre', { cls: 'tool-result', text: message.content }));
  }
  const view = new AnswerView(mode || 'ember');
  view.content = message.content || '';
  if (message.reasoning_content) view.addReasoning(message.reasoning_content);
  view.setToolCalls(message.tool_calls);
  if (message.usage) view.describe({ usage: message.usage });
  view.finish(message.finish_reason === 'cancelled' ? 'stopped' : message.finish_reason || 'stop');
  return view.node;
}
