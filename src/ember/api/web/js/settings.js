// What this browser remembers between visits: the API key, the person's name (the API's `user`) and the
// last choices in the top bar. Everything lives in localStorage under "ember." names, nowhere else.

const PREFIX = 'ember.';

function read(name, fallback = '') {
  try {
    return localStorage.getItem(PREFIX + name) ?? fallback;
  } catch {
    return fallback; // storage disabled (private mode, policy): work without remembering
  }
}

function write(name, value) {
  try {
    if (value === '' || value === null || value === undefined) localStorage.removeItem(PREFIX + name);
    else localStorage.setItem(PREFIX + name, String(value));
  } catch {
    // storage disabled: the value holds for this page only
  }
}

export const settings = {
  get apiKey() { return read('apiKey'); },
  set apiKey(value) { write('apiKey', value.trim()); },
  get user() { return read('user'); },
  set user(value) { write('user', value.trim()); },
  get mode() { return read('mode'); },
  set mode(value) { write('mode', value); },
  get effort() { return read('effort'); },
  set effort(value) { write('effort', value); },
  get trace() { return read('trace') === '1'; },
  set trace(value) { write('trace', value ? '1' : ''); },
};
