// A stored conversation is a tree: editing a message or regenerating an answer adds a version beside it
// (the server keeps the old one). These are the controls on each turn of the branch shown: "‹ 1/2 ›" to show
// another version, Copy on each answer, Edit on the person's messages, Regenerate on the last answer, and the
// form that edits a message in place.

import { copyButton } from './copy.js';
import { el } from './render.js';

function button(label, run, { cls = 'link-button small', aria = label, disabled = false } = {}) {
  const node = el('button', { cls, attrs: { type: 'button', 'aria-label': aria }, text: label });
  node.disabled = disabled;
  node.addEventListener('click', run);
  return node;
}

/** The text a person wrote in `message` (a wire turn: a string, or parts of which the text ones count). */
export function textOf(message) {
  if (typeof message.content === 'string') return message.content;
  return (message.content ?? []).filter((part) => part.type === 'text').map((part) => part.text).join('\n');
}

/**
 * The controls for `turn` ({message, seq, siblings}), or null if it has none. `last`: it ends the branch;
 * `busy`: an answer is being written (nothing can change then); `on`: {show(seq), edit(), regenerate()}.
 */
export function turnTools(turn, { last, busy }, on) {
  const tools = el('div', { cls: 'turn-tools' });
  const siblings = turn.siblings ?? [];
  if (siblings.length > 1) {
    const at = siblings.indexOf(turn.seq);
    const step = (offset, label, aria) => {
      const seq = siblings[at + offset];
      return button(label, () => on.show(seq), { cls: 'icon-button branch-arrow', aria, disabled: busy || seq === undefined });
    };
    tools.append(
      step(-1, '‹', 'Previous version'),
      el('span', { cls: 'branch-count', attrs: { title: 'Versions of this turn' }, text: `${at + 1}/${siblings.length}` }),
      step(1, '›', 'Next version'),
    );
  }
  if (turn.message.role === 'assistant' && textOf(turn.message)) {
    tools.append(copyButton(() => textOf(turn.message), 'Copy this answer'));
  }
  const stored = turn.seq !== null && turn.seq !== undefined && !busy;
  if (stored && turn.message.role === 'user') tools.append(button('Edit', on.edit, { aria: 'Edit this message' }));
  if (stored && last && turn.message.role === 'assistant') {
    tools.append(button('Regenerate', on.regenerate, { aria: 'Regenerate this answer' }));
  }
  return tools.childElementCount ? tools : null;
}

/** A form in place of a message's text: `send(text)` with the edited text, or `cancel()`. */
export function editForm(text, { send, cancel }) {
  const box = el('textarea', { cls: 'edit-text', attrs: { 'aria-label': 'Edit your message', rows: '3' } });
  box.value = text;
  const form = el('form', { cls: 'edit-form' }, box,
    el('div', { cls: 'edit-buttons' },
      el('button', { cls: 'primary', attrs: { type: 'submit' }, text: 'Send' }),
      button('Cancel', cancel, { cls: '' })));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (box.value.trim()) send(box.value.trim());
  });
  box.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === 'Escape') {
      event.stopPropagation();
      cancel();
    }
  });
  requestAnimationFrame(() => box.focus());
  return form;
}
