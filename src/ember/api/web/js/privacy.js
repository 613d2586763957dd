// The privacy page: consent flags (GET /v1/me, PATCH /v1/me/consent), an export of everything held
// (GET /v1/me/export, saved as a JSON file) and erasure (DELETE /v1/me, after an explicit confirmation).

import { call, getJson, withUser } from './api.js';
import { settings } from './settings.js';

const NAMES = {
  messages: ['message', 'messages'],
  conversations: ['conversation', 'conversations'],
  consent: ['consent record', 'consent records'],
  api_keys: ['API key', 'API keys'],
  media: ['stored image', 'stored images'],
};

/** "1 message", "3 conversations": what DELETE /v1/me reports, in words. */
function count(n, table) {
  const [one, many] = NAMES[table] ?? [table, table];
  return `${n} ${n === 1 ? one : many}`;
}

export class PrivacyPage {
  /** `root`: the privacy view; `onDeleted()` runs after an erasure (to clear the chat and the list). */
  constructor(root, onDeleted) {
    this.root = root;
    this.onDeleted = onDeleted;
    this.status = root.querySelector('#privacy-status');
    this.person = root.querySelector('#privacy-person');
    this.flags = [...root.querySelectorAll('input[data-flag]')];
    this.confirm = root.querySelector('#delete-confirm');
    this.memories = root.querySelector('#memories');
    this.memoriesEmpty = root.querySelector('#memories-empty');
    for (const box of this.flags) box.addEventListener('change', () => this.setFlag(box));
    root.querySelector('#export').addEventListener('click', () => this.exportData());
    root.querySelector('#delete').addEventListener('click', () => this.askDelete());
    root.querySelector('#delete-no').addEventListener('click', () => this.closeDelete());
    root.querySelector('#delete-yes').addEventListener('click', () => this.deleteData());
  }

  say(message, failed = false) {
    this.status.textContent = message;
    this.status.classList.toggle('error-text', failed);
  }

  async load() {
    this.closeDelete();
    try {
      const me = await getJson(withUser('/v1/me'));
      this.show(me);
      await this.loadMemories();
      this.say('');
    } catch (err) {
      this.say(err.message, true);
    }
  }

  /** The facts the person asked Ember to remember, each with a button that forgets it. */
  async loadMemories() {
    const kept = (await getJson(withUser('/v1/me/memories'))).data;
    this.memories.replaceChildren(...kept.map((memory) => {
      const forget = document.createElement('button');
      forget.type = 'button';
      forget.className = 'link-button small';
      forget.textContent = 'Forget';
      forget.setAttribute('aria-label', `Forget “${memory.text}”`);
      forget.addEventListener('click', () => this.forget(memory));
      const item = document.createElement('li');
      const text = document.createElement('span');
      text.textContent = memory.text;
      item.append(text, ' ', forget);
      return item;
    }));
    this.memoriesEmpty.hidden = kept.length > 0;
  }

  async forget(memory) {
    try {
      await call(withUser(`/v1/me/memories/${encodeURIComponent(memory.id)}`), { method: 'DELETE' });
      await this.loadMemories();
      this.say('Forgotten.');
    } catch (err) {
      this.say(err.message, true);
    }
  }

  show(me) {
    this.person.textContent = me.id;
    for (const box of this.flags) box.checked = Boolean(me.consent[box.dataset.flag]);
  }

  async setFlag(box) {
    const flag = box.dataset.flag;
    box.disabled = true;
    try {
      const me = await getJson(withUser('/v1/me/consent'), { method: 'PATCH', body: { [flag]: box.checked } });
      this.show(me);
      this.say(`Saved: ${flag.replace('_', ' ')} is ${box.checked ? 'on' : 'off'}.`);
    } catch (err) {
      box.checked = !box.checked;
      this.say(err.message, true);
    } finally {
      box.disabled = false;
    }
  }

  async exportData() {
    try {
      const response = await call(withUser('/v1/me/export'));
      const blob = new Blob([JSON.stringify(await response.json(), null, 2)], { type: 'application/json' });
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = `ember-export-${new Date().toISOString().slice(0, 10)}.json`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      this.say('Your data was exported.');
    } catch (err) {
      this.say(err.message, true);
    }
  }

  askDelete() {
    // a key's owner acting for itself (no name set) also erases the keys it owns: say so
    this.root.querySelector('#delete-key-warning').hidden = !(settings.apiKey && !settings.user);
    this.confirm.hidden = false;
    this.root.querySelector('#delete-no').focus();
  }

  closeDelete() {
    this.confirm.hidden = true;
  }

  async deleteData() {
    try {
      const result = await getJson(withUser('/v1/me'), { method: 'DELETE' });
      const removed = result.removed ?? {};
      const counts = Object.entries(removed).filter(([, n]) => n).map(([what, n]) => count(n, what));
      this.closeDelete();
      this.say(`Deleted: ${counts.join(', ') || 'nothing was stored'}.`);
      this.onDeleted();
      const me = await getJson(withUser('/v1/me')).catch(() => null); // the defaults apply again
      if (me) this.show(me);
    } catch (err) {
      this.say(err.message, true);
    }
  }
}
