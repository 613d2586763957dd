// The sidebar: stored conversations (GET /v1/conversations), newest first, or those holding the search text;
// choosing one opens it; each can be renamed, exported as Markdown or deleted.

import { call, getJson, withUser } from './api.js';
import { el } from './render.js';

export class ConversationList {
  /** `list`: the <ul>; `empty`: the "none yet" note; `onOpen(id)` when one is chosen; `onGone(id)` when one
   * is deleted; `onError(err)` when an action fails. */
  constructor(list, empty, { onOpen, onGone, onError }) {
    this.list = list;
    this.empty = empty;
    this.onOpen = onOpen;
    this.onGone = onGone;
    this.onError = onError;
    this.current = null;
    this.query = '';
  }

  /** Show only the conversations holding `text` ('' for all). */
  async search(text) {
    this.query = text.trim();
    return this.refresh();
  }

  /** Reload the list; resolves to the ids shown. */
  async refresh() {
    let rows = [];
    const search = this.query ? `&q=${encodeURIComponent(this.query)}` : '';
    try {
      rows = (await getJson(withUser(`/v1/conversations?limit=100${search}`))).data;
      this.empty.textContent = this.query ? 'No conversation holds that text.' : 'No stored conversations yet.';
    } catch (err) {
      this.empty.textContent = `Conversations could not be loaded: ${err.message}`;
    }
    this.list.replaceChildren(...rows.map((row) => this.item(row)));
    this.empty.hidden = rows.length > 0;
    return rows.map((row) => row.id);
  }

  item(row) {
    const when = new Date(row.updated_at * 1000);
    const title = row.title || '(untitled)';
    const button = el(
      'button',
      { cls: 'conversation', attrs: { type: 'button', 'data-id': row.id } },
      el('span', { cls: 'conversation-title', text: title }),
      el('span', { cls: 'conversation-meta', text: `${(row.mode || '').replace(/^ember-/, '')} · ${when.toLocaleString()}` }),
    );
    if (row.id === this.current) button.setAttribute('aria-current', 'true');
    button.addEventListener('click', () => this.onOpen(row.id));
    const actions = el('div', { cls: 'conversation-actions' },
      this.action('Rename', title, () => this.rename(row)),
      this.action('Export', title, () => this.download(row.id)),
      this.action('Delete', title, () => this.remove(row)));
    return el('li', { cls: 'conversation-item' }, button, actions);
  }

  action(label, title, run) {
    const button = el('button', { cls: 'link-button small', attrs: { type: 'button', 'aria-label': `${label} “${title}”` }, text: label });
    button.addEventListener('click', () => run().catch(this.onError));
    return button;
  }

  async rename(row) {
    const title = window.prompt('A new title for this conversation:', row.title || '');
    if (title === null || !title.trim()) return;
    await call(withUser(`/v1/conversations/${encodeURIComponent(row.id)}`), { method: 'PATCH', body: { title } });
    await this.refresh();
  }

  async remove(row) {
    if (!window.confirm(`Delete “${row.title || '(untitled)'}” and all its messages for good?`)) return;
    await call(withUser(`/v1/conversations/${encodeURIComponent(row.id)}`), { method: 'DELETE' });
    if (row.id === this.current) this.onGone(row.id);
    await this.refresh();
  }

  /** Save the conversation as a Markdown file. */
  async download(id) {
    const response = await call(withUser(`/v1/conversations/${encodeURIComponent(id)}/export?format=markdown`));
    const link = document.createElement('a');
    link.href = URL.createObjectURL(await response.blob());
    link.download = `${id}.md`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
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
