// The page's wiring: top bar (mode, effort, trace), composer (keyboard, images, microphone, send and
// stop), sidebar, settings and shortcuts dialogs, error banner, and the two views (#chat, #privacy) chosen by
// the URL hash.

import { getJson } from './api.js';
import { Attachments } from './attachments.js';
import { Chat } from './chat.js';
import { ConversationList } from './conversations.js';
import { PrivacyPage } from './privacy.js';
import { Recorder } from './recorder.js';
import { el } from './render.js';
import { settings } from './settings.js';
import { setupShortcuts } from './shortcuts.js';

const $ = (id) => document.getElementById(id);
const form = $('composer');
const input = $('message');
const modeSelect = $('mode');
const errorBox = $('error');
const status = $('status');

// --- errors -------------------------------------------------------------------------------------

function clearError() {
  errorBox.hidden = true;
  errorBox.replaceChildren();
}

/** Show `err` (an ApiError or any Error) in the alert banner, with what to do about it. */
function showError(err) {
  const close = el('button', { cls: 'link-button', attrs: { type: 'button' }, text: 'Dismiss' });
  close.addEventListener('click', clearError);
  const parts = [el('p', { cls: 'error-message', text: err.message })];
  if (err.detail && err.detail !== err.message) parts.push(el('p', { cls: 'error-detail small', text: err.detail }));
  const actions = el('p', { cls: 'error-actions' });
  if (err.status === 401) {
    const open = el('button', { cls: 'link-button', attrs: { type: 'button' }, text: 'Open settings' });
    open.addEventListener('click', openSettings);
    actions.append(open, ' ');
  }
  actions.append(close);
  errorBox.dataset.status = String(err.status ?? '');
  errorBox.replaceChildren(...parts, actions);
  errorBox.hidden = false;
}

// --- modes --------------------------------------------------------------------------------------

async function loadModes() {
  let models;
  try {
    models = (await getJson('/v1/models')).data.filter((m) => m.task === 'chat'); // not the embedding models
  } catch (err) {
    showError(err);
    if (err.status === 401) openSettings();
    return;
  }
  const wanted = settings.mode;
  modeSelect.replaceChildren(
    ...models.map((m) => el('option', { attrs: { value: m.id, title: m.description || '' }, text: m.id.replace(/^ember-/, '') })),
  );
  if (models.some((m) => m.id === wanted)) modeSelect.value = wanted;
  describeMode();
}

function describeMode() {
  const option = modeSelect.selectedOptions[0];
  $('mode-help').textContent = option ? option.title : '';
  modeSelect.title = option ? option.title : '';
}

function chooseMode(name) {
  if ([...modeSelect.options].some((o) => o.value === name)) modeSelect.value = name;
  describeMode();
}

// --- chat -----------------------------------------------------------------------------------------

const conversations = new ConversationList($('conversations'), $('conversations-empty'), {
  onOpen: openConversation,
  onGone: () => newChat(false),
  onError: showError,
});
let searchTimer = null;
$('conversation-search').addEventListener('input', (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => conversations.search(event.target.value), 250);
});
const attachments = new Attachments($('attachments'), (message) => showError(new Error(message)));
const recorder = new Recorder();
const TITLE_CHECKS_MS = [3000, 10000]; // the fast model writes a new conversation's title just after its answer
const chat = new Chat($('messages'), {
  busy: setBusy,
  error: showError,
  stored: async (id, first) => {
    conversations.current = id;
    // a stopped answer is saved just after the page let go of it: look again shortly if it is not listed yet
    if (!(await conversations.refresh()).includes(id)) setTimeout(() => conversations.refresh(), 1000);
    if (first) for (const wait of TITLE_CHECKS_MS) setTimeout(() => conversations.refresh(), wait);
  },
  mode: chooseMode,
  options: answerOptions,
});

/** How to answer, as the top bar says: the mode, the reasoning effort and whether to return the trace. */
function answerOptions() {
  return { mode: modeSelect.value, effort: $('effort').value, trace: $('trace-toggle').checked };
}

function setBusy(on) {
  $('send').hidden = on;
  $('stop').hidden = !on;
  form.setAttribute('aria-busy', String(on));
  status.textContent = on ? 'Ember is answering… (Esc stops)' : '';
  $('welcome').hidden = $('messages').children.length > 0;
  if (!on && document.activeElement === document.body) input.focus();
}

async function openConversation(id) {
  document.body.classList.remove('sidebar-open');
  $('menu-toggle').setAttribute('aria-expanded', 'false');
  clearError();
  try {
    await chat.load(id);
    conversations.select(id);
    $('welcome').hidden = true;
    location.hash = '#chat';
  } catch (err) {
    showError(err);
  }
}

/** Start over with an empty chat; `show` also switches to the chat view. */
function newChat(show = true) {
  chat.reset();
  conversations.select(null);
  clearError();
  $('welcome').hidden = false;
  if (!show) return;
  location.hash = '#chat';
  input.focus();
}

async function submit(event) {
  event.preventDefault();
  if (chat.busy) return;
  if (recorder.recording) await stopRecording();
  const text = input.value.trim();
  if (!text && attachments.empty) {
    status.textContent = 'Type a message, attach an image or record your voice first.';
    return;
  }
  if (!modeSelect.value) {
    showError(new Error('No mode is available: the server did not list any (see the error above, or Settings).'));
    return;
  }
  clearError();
  input.value = '';
  grow();
  const items = attachments.take();
  await chat.send({ text, items, ...answerOptions() });
}

function grow() {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}

// --- images and voice -----------------------------------------------------------------------------

function imagesIn(transfer) {
  return [...(transfer?.files ?? [])].filter((file) => file.type.startsWith('image/'));
}

function setupAttachments() {
  const picker = $('image-input');
  $('attach').addEventListener('click', () => picker.click());
  picker.addEventListener('change', async () => {
    await attachments.addFiles([...picker.files]);
    picker.value = '';
  });
  input.addEventListener('paste', (event) => {
    const images = imagesIn(event.clipboardData);
    if (!images.length) return;
    event.preventDefault();
    attachments.addFiles(images);
  });
  const zone = $('chat-view');
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    attachments.addFiles([...(event.dataTransfer?.files ?? [])]);
  });
}

let recordingTimer = null;

async function startRecording() {
  const button = $('record');
  try {
    await recorder.start();
  } catch (err) {
    const refused = err.name === 'NotAllowedError' || err.name === 'SecurityError';
    showError(new Error(refused ? 'Microphone access was refused: allow it in the browser to record.' : `The microphone could not be used: ${err.message}`));
    return;
  }
  button.setAttribute('aria-pressed', 'true');
  button.setAttribute('aria-label', 'Stop recording');
  button.classList.add('recording');
  const started = performance.now();
  const tick = () => { status.textContent = `Recording… ${Math.floor((performance.now() - started) / 1000)} s (press the microphone again to stop)`; };
  tick();
  recordingTimer = setInterval(tick, 250);
}

async function stopRecording() {
  const button = $('record');
  clearInterval(recordingTimer);
  button.setAttribute('aria-pressed', 'false');
  button.setAttribute('aria-label', 'Record a voice message');
  button.classList.remove('recording');
  const clip = await recorder.stop();
  status.textContent = '';
  if (!clip.blob.size) {
    showError(new Error('Nothing was recorded.'));
    return;
  }
  await attachments.addAudio(clip.blob, clip.format, clip.seconds);
  input.focus();
}

function setupRecorder() {
  const button = $('record');
  if (!Recorder.supported()) {
    button.disabled = true;
    button.title = 'This browser cannot record audio here';
    return;
  }
  button.addEventListener('click', () => (recorder.recording ? stopRecording() : startRecording()));
  document.addEventListener('visibilitychange', () => {
    if (document.hidden && recorder.recording) stopRecording();
  });
}

// --- settings, sidebar, views ---------------------------------------------------------------------

function openSettings() {
  $('api-key').value = settings.apiKey;
  $('user-name').value = settings.user;
  const dialog = $('settings');
  if (!dialog.open) dialog.showModal();
}

function setupSettings() {
  const dialog = $('settings');
  $('settings-open').addEventListener('click', openSettings);
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'save') return;
    settings.apiKey = $('api-key').value;
    settings.user = $('user-name').value;
    newChat(false);
    await Promise.all([loadModes(), conversations.refresh()]);
    route();
  });
}

function setupTopBar() {
  modeSelect.addEventListener('change', () => {
    settings.mode = modeSelect.value;
    describeMode();
  });
  const effort = $('effort');
  effort.value = settings.effort;
  effort.addEventListener('change', () => { settings.effort = effort.value; });
  const trace = $('trace-toggle');
  trace.checked = settings.trace;
  trace.addEventListener('change', () => { settings.trace = trace.checked; });
  const menu = $('menu-toggle');
  menu.addEventListener('click', () => {
    const open = document.body.classList.toggle('sidebar-open');
    menu.setAttribute('aria-expanded', String(open));
  });
  $('new-chat').addEventListener('click', () => newChat());
}

function setupComposer() {
  form.addEventListener('submit', submit);
  input.addEventListener('input', grow);
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  $('stop').addEventListener('click', () => chat.stop());
}

function setupKeys() {
  const help = setupShortcuts($('shortcuts'), {
    escape: () => {
      if (chat.busy) chat.stop();
      if (document.body.classList.contains('sidebar-open')) $('menu-toggle').click();
    },
    focus: () => {
      location.hash = '#chat';
      input.focus();
    },
    newChat: () => newChat(),
  });
  $('shortcuts-open').addEventListener('click', help);
}

const privacy = new PrivacyPage($('privacy-view'), () => {
  newChat(false);
  conversations.refresh();
});

function route() {
  const onPrivacy = location.hash === '#privacy';
  $('chat-view').hidden = onPrivacy;
  $('privacy-view').hidden = !onPrivacy;
  const link = $('privacy-link');
  if (onPrivacy) link.setAttribute('aria-current', 'page');
  else link.removeAttribute('aria-current');
  document.title = onPrivacy ? 'Privacy · Ember' : 'Ember';
  if (onPrivacy) privacy.load();
}

setupTopBar();
setupComposer();
setupKeys();
setupAttachments();
setupRecorder();
setupSettings();
window.addEventListener('hashchange', route);
route();
await Promise.all([loadModes(), conversations.refresh()]);
document.body.dataset.ready = 'true'; // for tests and scripts: the modes are loaded
