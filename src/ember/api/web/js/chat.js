// One conversation in the page: what has been said (sent back whole each turn, as the OpenAI API
// expects, with the stored conversation's id so the server appends to it), sending a message and
// streaming the answer, and stopping it. Stopping aborts the fetch; the server sees the client leave and
// frees the engine.

import { call, getJson, withUser } from './api.js';
import { contentParts } from './attachments.js';
import { AnswerView, storedMessage, showTranscripts, userBubble } from './render.js';
import { settings } from './settings.js';
import { readEvents } from './sse.js';

const NEAR_BOTTOM_PX = 80;

export class Chat {
  /** `log`: the messages container; `ui`: {busy(bool), error(err), stored(id), mode(name)} callbacks. */
  constructor(log, ui) {
    this.log = log;
    this.ui = ui;
    this.history = [];
    this.conversationId = null;
    this.controller = null;
  }

  get busy() {
    return this.controller !== null;
  }

  reset() {
    this.stop();
    this.history = [];
    this.conversationId = null;
    this.log.replaceChildren();
  }

  /** Show a stored conversation and continue it. */
  async load(id) {
    const conversation = await getJson(withUser(`/v1/conversations/${encodeURIComponent(id)}`));
    this.reset();
    this.conversationId = conversation.id;
    this.history = conversation.messages.map(({ role, content }) => ({ role, content }));
    for (const message of conversation.messages) this.log.append(storedMessage(message, conversation.mode));
    if (conversation.mode) this.ui.mode(conversation.mode);
    this.scroll(true);
  }

  stop() {
    this.controller?.abort();
  }

  scroll(force = false) {
    const gap = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight;
    if (force || gap < NEAR_BOTTOM_PX * 4) this.log.scrollTop = this.log.scrollHeight;
  }

  /** Send `text` and attachment `items` to `mode`; resolves when the answer is over, however it ended. */
  async send({ text, items, mode, effort, trace }) {
    const bubble = userBubble([
      { text },
      ...items.map((item) => (item.kind === 'image' ? { image: item.url, name: item.name } : { audio: item.playback })),
    ]);
    const turn = { role: 'user', content: contentParts(text, items) };
    this.history.push(turn);
    const answer = new AnswerView(mode);
    answer.onPaint = () => this.scroll();
    this.log.append(bubble, answer.node);
    this.scroll(true);
    const body = { model: mode, messages: this.history, stream: true, stream_options: { include_usage: true } };
    if (this.conversationId) body.conversation_id = this.conversationId;
    if (settings.user) body.user = settings.user;
    if (effort) body.reasoning_effort = effort;
    if (trace) body.include_trace = true;
    this.controller = new AbortController();
    this.ui.busy(true);
    let started = false;
    try {
      const response = await call('/v1/chat/completions', { method: 'POST', body, signal: this.controller.signal });
      started = true;
      this.conversationId = response.headers.get('x-ember-conversation-id') || this.conversationId;
      await this.stream(response, answer, bubble);
    } catch (err) {
      this.failed(err, { started, answer, bubble, turn });
    } finally {
      this.controller = null;
      if (answer.content) this.history.push({ role: 'assistant', content: answer.content });
      this.ui.busy(false);
      if (started && this.conversationId) this.ui.stored(this.conversationId);
    }
  }

  /** Read the SSE answer into `answer`. */
  async stream(response, answer, bubble) {
    let finish = null;
    for await (const chunk of readEvents(response)) {
      if (chunk.error) {
        answer.finish('error', chunk.error.message);
        return;
      }
      if (chunk.input_transcripts) this.heard(chunk.input_transcripts, bubble);
      if (chunk.citations) answer.setCitations(chunk.citations);
      if (chunk.trace) answer.setTrace(chunk.trace);
      if (chunk.route) answer.setRoute(chunk.route);
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      if (choice.delta?.reasoning_content) answer.addReasoning(choice.delta.reasoning_content);
      if (choice.delta?.content) answer.addContent(choice.delta.content);
      finish = choice.finish_reason || finish;
    }
    answer.finish(finish || 'stop');
  }

  /** Voice parts were transcribed: show it, and send the text (not the audio again) in later turns. */
  heard(transcripts, bubble) {
    showTranscripts(bubble, transcripts);
    for (const { message, part, text } of transcripts) {
      const content = this.history[message]?.content;
      if (Array.isArray(content) && content[part]?.type === 'input_audio') content[part] = { type: 'text', text };
    }
  }

  failed(err, { started, answer, bubble, turn }) {
    if (err.name === 'AbortError') {
      answer.finish('stopped');
      return;
    }
    if (started) {
      // the answer broke off mid-stream (the connection dropped): keep what came
      answer.finish('error', err.message);
      return;
    }
    // refused before any answer: the turn was not taken; say why and let the person try again
    this.history = this.history.filter((t) => t !== turn);
    bubble.classList.add('failed');
    bubble.setAttribute('aria-label', 'Not sent');
    answer.node.remove();
    this.ui.error(err);
  }
}
