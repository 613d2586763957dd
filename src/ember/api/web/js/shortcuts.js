// Keyboard shortcuts: one table, from which both the keys' handling and the "Keyboard shortcuts" dialog come
// (opened by the top bar's Shortcuts button and by "?"). A key typed into a text field is the field's, except
// Esc and the shortcuts with Ctrl (⌘ on a Mac). Enter and Shift+Enter in the message box and the keys of the
// form that edits a message are handled where they apply; the table lists them so the dialog shows them.

import { el } from './dom.js';

const TEXT_FIELD = 'textarea, select, [contenteditable=""], [contenteditable="true"], '
  + 'input:not([type=checkbox]):not([type=radio]):not([type=button]):not([type=submit]):not([type=file])';

/** A key pressed alone (no Ctrl, ⌘ or Alt; Shift may be needed to type it, as for "?"). */
const alone = (key) => (event) => event.key === key && !event.ctrlKey && !event.metaKey && !event.altKey;
/** Ctrl (or ⌘) + Shift + a letter. */
const command = (letter) => (event) => (event.ctrlKey || event.metaKey) && event.shiftKey && !event.altKey
  && event.key.toLowerCase() === letter;

/** Every shortcut: `keys` as shown and `what` it does; those handled here also `match(event)` and `run()`,
 * `inFields` when they work in a text field too, `keepDefault` when the browser's own handling stays (Esc
 * also closes a dialog). `on`: {escape, focus, newChat, help}. */
function table(on) {
  return [
    { keys: ['Enter'], what: 'Send the message (in the message box)' },
    { keys: ['Shift', 'Enter'], what: 'Start a new line in the message' },
    { keys: ['Esc'], what: 'Stop the answer being written; close the conversation list on a phone',
      match: alone('Escape'), run: on.escape, inFields: true, keepDefault: true },
    { keys: ['/'], what: 'Go to the message box', match: alone('/'), run: on.focus },
    { keys: ['Ctrl', 'Shift', 'O'], what: 'Start a new chat (⌘ instead of Ctrl on a Mac)',
      match: command('o'), run: on.newChat, inFields: true },
    { keys: ['?'], what: 'Show these shortcuts', match: alone('?'), run: on.help },
    { keys: ['Enter'], what: 'Send an edited message (while editing one)' },
    { keys: ['Esc'], what: 'Cancel editing a message' },
  ];
}

function row({ keys, what }) {
  const combo = el('dt');
  keys.forEach((key, i) => combo.append(...(i ? ['+'] : []), el('kbd', { text: key })));
  return [combo, el('dd', { text: what })];
}

/** Handle the shortcuts on the page and list them in `dialog` (its `.shortcut-list`); `on`: {escape(),
 * focus(), newChat()}. Returns the function that opens the dialog. */
export function setupShortcuts(dialog, on) {
  const help = () => {
    if (!dialog.open) dialog.showModal();
  };
  const shortcuts = table({ ...on, help });
  dialog.querySelector('.shortcut-list').replaceChildren(...shortcuts.flatMap(row));
  document.addEventListener('keydown', (event) => {
    if (event.isComposing || event.defaultPrevented) return;
    const typing = event.target instanceof Element && event.target.matches(TEXT_FIELD);
    const hit = shortcuts.find((shortcut) => shortcut.match?.(event) && (shortcut.inFields || !typing));
    if (!hit) return;
    if (!hit.keepDefault) event.preventDefault();
    hit.run();
  });
  return help;
}
