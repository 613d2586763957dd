// One conversation in the page: the turns of the branch shown (sent back whole each turn, as the OpenAI API
// expects, with the stored conversation's id so the server appends to it), sending a message and streaming
// the answer, stopping it, and the branches: editing a message or regenerating the last answer sends only
// the new turn with `replace` (the server keeps the old version), and "‹ 1/2 ›" shows another version.
// Stopping aborts the fetch; the server sees the client leave and frees the engine. Each answer is timed here
// (to its first token and to its end) for its details line, and a memory proposal is asked under it.

import { call, getJson, withUser } from './api.js';
import { contentParts } from './attachments.js';
import { editForm, textOf, turnTools } from './branches.js';
import { proposalBox } from './proposals.js';
import { AnswerView, el, storedMessage, showTranscripts, userBubble } from './render.js';
import { settings } from './settings.js';
import { readEvents } from './sse.js';

const NEAR_BOTTOM_PX = 80;
const STORED_AGAIN_MS = 1000; // a stopped answer is saved just after the page let go of it

function wireTurn({ role, content, tool_calls, tool_call_id }) {
  return { role, content, ...(tool_calls && { tool_calls }), ...(tool_call_id && { tool_call_id }) };
}

/** Fill a stored image's thumbnail: its URL needs the key and the person's name, so it is fetched, not linked. */
async function showStoredImage(image) {
  try {
    const response = await call(withUser(image.dataset.media));
    image.addEventListener('load', () => URL.revokeObjectURL(image.src), { once: true });
    image.src = URL.createObjectURL(await response.blob());
  } catch {
    image.replaceWith(el('p', { cls: 'note', text: 'Image no longer available.' }));
  }
}

export class Chat {
  /** `log`: the messages container; `ui`: {busy(bool), error(err), stored(id, first), mode(name), options()}
   * callbacks (`options()`: the {mode, effort, trace} to answer with). */
  constructor(log, ui) {
    this.log = log;
    this.ui = ui;
    this.turns = []; // the branch shown: {message (as sent), node, seq and siblings (null until stored)}
    this.conversationId = null;
    this.controller = null;
  }

  get busy() {
    return this.controller !== null;
  }

  get history() {
    return this.turns.map((turn) => turn.message);
  }

  reset() {
    this.stop();
    this.turns = [];
    this.conversationId = null;
    this.log.replaceChildren();
  }

  /** Show a stored conversation and continue it. */
  async load(id) {
    this.show(await getJson(withUser(`/v1/conversations/${encodeURIComponent(id)}`)));
  }

  /** Show `conversation` (as the conversations API returns it): the turns of its active branch. */
  show(conversation) {
    this.reset();
    this.conversationId = conversation.id;
    for (const message of conversation.messages) {
      const node = storedMessage(message, conversation.mode);
      this.turns.push({ message: wireTurn(message), node, seq: message.seq, siblings: message.siblings });
      this.log.append(node);
    }
    for (const image of this.log.querySelectorAll('img[data-media]')) showStoredImage(image);
    this.decorate();
    if (conversation.mode) this.ui.mode(conversation.mode);
    this.scroll(true);
  }

  /** Show the branch through stored turn `seq`. */
  async showBranch(seq) {
    const path = `/v1/conversations/${encodeURIComponent(this.conversationId)}/branch`;
    try {
      this.show(await getJson(withUser(path), { method: 'POST', body: { seq } }));
    } catch (err) {
      this.ui.error(err);
    }
  }

  /** Put each turn's branch controls on it (none while an answer is written). */
  decorate() {
    this.turns.forEach((turn, index) => {
      turn.node.querySelector(':scope > .turn-tools')?.remove();
      const tools = turnTools(turn, { last: index === this.turns.length - 1, busy: this.busy }, {
        show: (seq) => this.showBranch(seq),
        edit: () => this.editing(index),
        regenerate: () => this.regenerate(),
      });
      if (tools) turn.node.append(tools);
    });
  }

  /** Edit the person's turn at `index` in place; sending it answers it as a new branch. */
  editing(index) {
    const turn = this.turns[index];
    const shown = [...turn.node.children];
    const restore = () => {
      form.remove();
      for (const child of shown) child.hidden = false;
    };
    const form = editForm(textOf(turn.message), {
      send: (text) => this.edit(index, text),
      cancel: restore,
    });
    for (const child of shown) child.hidden = true;
    turn.node.append(form);
  }

  /** Send `text` instead of the person's turn at `index` (the server keeps the old one as another branch). */
  async edit(index, text) {
    const replaced = this.turns[index];
    this.cut(index);
    const add = [{ message: { role: 'user', content: text }, node: userBubble([{ text }]) }];
    await this.ask({ ...this.ui.options(), add, replace: replaced.seq });
  }

  /** Answer the last question again (the server keeps the old answer as another branch). */
  async regenerate() {
    const replaced = this.turns[this.turns.length - 1];
    this.cut(this.turns.length - 1);
    await this.ask({ ...this.ui.options(), add: [], replace: replaced.seq });
  }

  /** Forget the turns from `index` on, and take them off the page. */
  cut(index) {
    for (const turn of this.turns.splice(index)) turn.node.remove();
    while (this.log.lastElementChild && !this.turns.some((t) => t.node === this.log.lastElementChild)) {
      this.log.lastElementChild.remove(); // failed or empty answers after them
    }
  }

  stop() {
    this.controller?.abort();
  }

  scroll(force = false) {
    const gap = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight;
    if (force || gap < NEAR_BOTTOM_PX * 4) this.log.scrollTop = this.log.scrollHeight;
  }

  /** Send `text` and attachment `items` to `mode`; resolves when the answer is over, however it ended. */
  async send({ text, items, ...options }) {
    const node = userBubble([
      { text },
      ...items.map((item) => (item.kind === 'image' ? { image: item.url, name: item.name } : { audio: item.playback })),
    ]);
    await this.ask({ ...options, add: [{ message: { role: 'user', content: contentParts(text, items) }, node }] });
  }

  /** Add the turns `add` ({message, node}) and answer them: after the whole branch, or with `replace` (a
   * stored turn's seq) only them, beside that turn. */
  async ask({ add, replace = null, mode, effort, trace }) {
    for (const turn of add) this.turns.push({ ...turn, seq: null, siblings: [] });
    const answer = new AnswerView(mode);
    answer.onPaint = () => this.scroll();
    this.log.append(...add.map((turn) => turn.node), answer.node);
    this.scroll(true);
    const sent = replace === null ? this.history : add.map((turn) => turn.message);
    const body = { model: mode, messages: sent, stream: true, stream_options: { include_usage: true } };
    if (this.conversationId) body.conversation_id = this.conversationId;
    if (replace !== null) body.replace = replace;
    if (settings.user) body.user = settings.user;
    if (effort) body.reasoning_effort = effort;
    if (trace) body.include_trace = true;
    const first = !this.conversationId;
    this.controller = new AbortController();
    this.ui.busy(true);
    this.decorate();
    let started = false;
    const clock = { sent: performance.now(), first: null };
    try {
      const response = await call('/v1/chat/completions', { method: 'POST', body, signal: this.controller.signal });
      started = true;
      this.conversationId = response.headers.get('x-ember-conversation-id') || this.conversationId;
      await this.stream(response, answer, { sent, bubble: add.at(-1)?.node, clock });
    } catch (err) {
      this.failed(err, { started, answer, add });
    } finally {
      answer.describe({ seconds: (performance.now() - clock.sent) / 1000, first: clock.first });
      this.controller = null;
      if (answer.content) this.turns.push({ message: { role: 'assistant', content: answer.content }, node: answer.node, seq: null, siblings: [] });
      this.ui.busy(false);
      this.decorate();
      if (started && this.conversationId) {
        this.ui.stored(this.conversationId, first);
        await this.numbered();
      } else if (replace !== null) {
        await this.load(this.conversationId).catch(() => {}); // refused: show the stored branch again
      }
    }
  }

  /** Take the stored turns' numbers and versions from the server (again shortly if some are not stored yet). */
  async numbered(again = true) {
    const id = this.conversationId;
    let stored;
    try {
      stored = (await getJson(withUser(`/v1/conversations/${encodeURIComponent(id)}`))).messages;
    } catch {
      return; // not stored (history is off), or gone: the turns stay unnumbered
    }
    if (id !== this.conversationId || this.busy) return;
    this.turns.forEach((turn, index) => {
      const message = stored[index];
      if (message?.role === turn.message.role) Object.assign(turn, { seq: message.seq, siblings: message.siblings });
    });
    this.decorate();
    if (again && this.turns.some((turn) => turn.seq === null)) setTimeout(() => this.numbered(false), STORED_AGAIN_MS);
  }

  /** Read the SSE answer into `answer`; `sent`: the messages sent, `bubble`: the last one's, `clock.first`: set
   * to the seconds from `clock.sent` to the first piece of the answer. */
  async stream(response, answer, { sent, bubble, clock }) {
    let finish = null;
    for await (const chunk of readEvents(response)) {
      if (chunk.error) {
        answer.finish('error', chunk.error.message);
        return;
      }
      if (chunk.input_transcripts) this.heard(chunk.input_transcripts, sent, bubble);
      if (chunk.citations) answer.setCitations(chunk.citations);
      if (chunk.trace) answer.setTrace(chunk.trace);
      if (chunk.route) answer.setRoute(chunk.route);
      if (chunk.usage) answer.describe({ usage: chunk.usage });
      if (chunk.memory_proposal) answer.node.append(proposalBox(chunk.memory_proposal));
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      const delta = choice.delta ?? {};
      if (clock.first === null && (delta.content || delta.reasoning_content || delta.tool_calls)) {
        clock.first = (performance.now() - clock.sent) / 1000;
      }
      if (delta.reasoning_content) answer.addReasoning(delta.reasoning_content);
      if (delta.content) answer.addContent(delta.content);
      if (delta.tool_calls) answer.addToolCallPieces(delta.tool_calls);
      finish = choice.finish_reason || finish;
    }
    answer.finish(finish || 'stop');
  }

  /** Voice parts were transcribed: show it, and send the text (not the audio again) in later turns. */
  heard(transcripts, sent, bubble) {
    if (bubble) showTranscripts(bubble, transcripts);
    for (const { message, part, text } of transcripts) {
      const content = sent[message]?.content;
      if (Array.isArray(content) && content[part]?.type === 'input_audio') content[part] = { type: 'text', text };
    }
  }

  failed(err, { started, answer, add }) {
    if (err.name === 'AbortError') {
      answer.finish('stopped');
      return;
    }
    if (started) {
      // the answer broke off mid-stream (the connection dropped): keep what came
      answer.finish('error', err.message);
      return;
    }
    // refused before any answer: the turns were not taken; say why and let the person try again
    this.turns = this.turns.filter((turn) => !add.some((added) => added.node === turn.node));
    for (const { node } of add) {
      node.classList.add('failed');
      node.setAttribute('aria-label', 'Not sent');
    }
    answer.node.remove();
    this.ui.error(err);
  }
}
