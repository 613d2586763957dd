// What waits to be sent with the next message: images (attached, pasted or dropped, read as data URIs)
// and voice recordings (base64 plus a format the server decodes). Shown as removable chips.

import { icon } from './icons.js';
import { el } from './render.js';

const MAX_IMAGE_BYTES = 20 * 2 ** 20; // larger images are refused here rather than after a long upload

/** A Blob's contents as a data: URI. */
export function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.addEventListener('load', () => resolve(reader.result));
    reader.addEventListener('error', () => reject(reader.error));
    reader.readAsDataURL(blob);
  });
}

export class Attachments {
  /** `list`: the <ul> chips go in; `onError(message)` reports a refused file. */
  constructor(list, onError) {
    this.list = list;
    this.onError = onError;
    this.items = [];
  }

  get empty() {
    return this.items.length === 0;
  }

  async addFiles(files) {
    for (const file of files) {
      if (!file.type.startsWith('image/')) {
        this.onError(`${file.name || 'That file'} is not an image.`);
      } else if (file.size > MAX_IMAGE_BYTES) {
        this.onError(`${file.name || 'The image'} is larger than ${MAX_IMAGE_BYTES / 2 ** 20} MB.`);
      } else {
        this.add({ kind: 'image', name: file.name || 'pasted image', url: await dataUrl(file) });
      }
    }
  }

  /** A recording: `blob` from MediaRecorder, `format` as the API names it (webm, ogg, m4a…). */
  async addAudio(blob, format, seconds) {
    const url = await dataUrl(blob);
    const data = url.slice(url.indexOf(',') + 1); // input_audio carries bare base64
    this.add({ kind: 'audio', name: `voice message (${seconds.toFixed(1)} s)`, data, format, playback: URL.createObjectURL(blob) });
  }

  add(item) {
    this.items.push(item);
    this.render();
  }

  remove(item) {
    this.items = this.items.filter((other) => other !== item);
    this.render();
  }

  /** Hand the items over (for sending) and clear the list. */
  take() {
    const items = this.items;
    this.items = [];
    this.render();
    return items;
  }

  render() {
    this.list.replaceChildren(...this.items.map((item) => this.chip(item)));
  }

  chip(item) {
    const preview = item.kind === 'image'
      ? el('img', { attrs: { src: item.url, alt: '' } })
      : icon('mic');
    const remove = el('button', { cls: 'chip-remove', attrs: { type: 'button', 'aria-label': `Remove ${item.name}` }, text: '×' });
    remove.addEventListener('click', () => this.remove(item));
    return el('li', { cls: `chip chip-${item.kind}` }, preview, el('span', { cls: 'chip-name', text: item.name }), remove);
  }
}

/** The message content for `text` plus `items`: a plain string, or OpenAI content parts. */
export function contentParts(text, items) {
  if (!items.length) return text;
  const parts = text ? [{ type: 'text', text }] : [];
  for (const item of items) {
    if (item.kind === 'image') parts.push({ type: 'image_url', image_url: { url: item.url } });
    else parts.push({ type: 'input_audio', input_audio: { data: item.data, format: item.format } });
  }
  return parts;
}
