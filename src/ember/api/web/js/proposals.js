// "Remember this?" under an answer: with the person's memory on, the server found a durable fact in their
// message ("I'm vegetarian") and proposed it (the answer's `memory_proposal`). Nothing is kept unless they press
// Save (POST /v1/me/memories); No takes the question away and sends nothing.

import { getJson, withUser } from './api.js';
import { el } from './dom.js';

/** The question for `proposal` ({text, kind}), with its Save and No buttons. */
export function proposalBox(proposal) {
  const box = el('div', { cls: 'proposal', attrs: { role: 'group', 'aria-label': 'Memory proposal' } });
  const save = el('button', { cls: 'primary', attrs: { type: 'button' }, text: 'Save' });
  const no = el('button', { attrs: { type: 'button' }, text: 'No' });
  const status = el('span', { cls: 'proposal-status', attrs: { role: 'status' } });
  const said = (text) => box.replaceChildren(el('p', { cls: 'note', attrs: { role: 'status' }, text }));
  save.addEventListener('click', async () => {
    save.disabled = true;
    no.disabled = true;
    try {
      await getJson(withUser('/v1/me/memories'), { method: 'POST', body: { text: proposal.text } });
      said(`Saved to your memory: “${proposal.text}”`);
    } catch (err) {
      status.textContent = err.message;
      save.disabled = false;
      no.disabled = false;
    }
  });
  no.addEventListener('click', () => box.remove());
  box.append(
    el('p', { cls: 'proposal-text' }, 'Remember this? ', el('strong', { text: `“${proposal.text}”` })),
    el('div', { cls: 'proposal-buttons' }, save, no, status),
  );
  return box;
}
