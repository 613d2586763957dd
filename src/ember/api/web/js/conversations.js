// The sidebar: stored conversations (GET /v1/conversations), newest first; choosing one opens it.

import { getJson, withUser } from './api.js';
import { el } from './render.js';

export class ConversationList {
  /** `list`: the <ul>; `empty`: the "none yet" note; `onOpen(id)` when one is chosen. */
  constructor(list, empty, onOpen) {
    this.list = list;
    this.empty = empty;
    this.onOpen = onOpen;
    this.current = null;
  }

  /** Reload the list; resolves to the ids shown. */
  async refresh() {
    let rows = [];
    try {
      rows = (await getJson(withUser('/v1/conversations?limit=100'))).data;
      this.empty.textContent = 'No stored conversations yet.';
    } catch (err) {
      this.empty.textContent = `Conversations could not be loaded: ${err.message}`;
    }
    this.list.replaceChildren(...rows.map((row) => this.item(row)));
    this.empty.hidden = rows.length > 0;
    return rows.map((row) => row.id);
  }

  item(row) {
    const when = new Date(row.updated_at * 1000);
    const button = el(
      'button',
      { cls: 'conversation', attrs: { type: 'button', 'data-id': row.id } },
      el('span', { cls: 'conversation-title', text: row.title || '(untitled)' }),
      el('span', { cls: 'conversation-meta', text: `${(row.mode || '').replace(/^ember-/, '')} · ${when.toLocaleString()}` }),
    );
    if (row.id === this.current) button.setAttribute('aria-current', 'true');
    button.addEventListener('click', () => this.onOpen(row.id));
    return el('li', {}, button);
  }

  /** Mark `id` as the open conversation (null: a new chat). */
  select(id) {
    this.current = id;
    for (const button of this.list.querySelectorAll('button.conversation')) {
      if (button.dataset.id === id) button.setAttribute('aria-current', 'true');
      else button.removeAttribute('aria-current');
    }
  }
}
