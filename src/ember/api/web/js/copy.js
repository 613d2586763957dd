// Copy buttons: on an answer (its raw Markdown) and on each code block in it (the code as written). The
// clipboard API needs a secure context (https, or this machine); a server reached over plain http on a network
// gets the older copy command instead. A button says "Copied" for a moment after it worked.

import { el } from './dom.js';

const SHOWN_MS = 1500;

/** Put `text` on the clipboard; resolves once it is there, rejects if the browser refused. */
export async function copyText(text) {
  if (navigator.clipboard?.writeText) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const box = el('textarea', { cls: 'visually-hidden', attrs: { readonly: '', 'aria-hidden': 'true' } });
  box.value = text;
  document.body.append(box);
  box.select();
  const copied = document.execCommand('copy');
  box.remove();
  if (!copied) throw new Error('the browser did not copy');
}

/** A "Copy" button that copies what `text()` returns; `aria`: its accessible name. */
export function copyButton(text, aria, cls = 'link-button small') {
  const button = el('button', { cls: `${cls} copy`, attrs: { type: 'button', 'aria-label': aria }, text: 'Copy' });
  let timer = null;
  button.addEventListener('click', async () => {
    clearTimeout(timer);
    try {
      await copyText(text());
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Copy failed';
    }
    timer = setTimeout(() => { button.textContent = 'Copy'; }, SHOWN_MS);
  });
  return button;
}

/** Give each code block under `root` a Copy button (the block's code, as the answer wrote it). */
export function addCodeCopies(root) {
  for (const pre of root.querySelectorAll(':scope pre')) {
    if (pre.parentElement.classList.contains('code-block')) continue;
    const code = pre.querySelector('code') ?? pre;
    const block = el('div', { cls: 'code-block' });
    pre.replaceWith(block);
    block.append(pre, copyButton(() => code.textContent, 'Copy this code', 'code-copy small'));
  }
}
