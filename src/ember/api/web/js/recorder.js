// Microphone recording with MediaRecorder. The clip is handed over as a Blob with the format name the
// server's input_audio accepts (webm or ogg with Opus in Chromium and Firefox, m4a in Safari).

const CANDIDATES = [
  ['audio/webm;codecs=opus', 'webm'],
  ['audio/ogg;codecs=opus', 'ogg'],
  ['audio/webm', 'webm'],
  ['audio/mp4', 'm4a'],
];

export function formatOf(mimeType) {
  const base = (mimeType || '').split(';')[0];
  return { 'audio/webm': 'webm', 'video/webm': 'webm', 'audio/ogg': 'ogg', 'audio/mp4': 'm4a', 'audio/wav': 'wav' }[base] ?? 'webm';
}

export class Recorder {
  constructor() {
    this.recorder = null;
    this.chunks = [];
    this.startedAt = 0;
  }

  static supported() {
    return Boolean(navigator.mediaDevices?.getUserMedia && window.MediaRecorder);
  }

  get recording() {
    return this.recorder !== null && this.recorder.state === 'recording';
  }

  async start() {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const found = CANDIDATES.find(([type]) => MediaRecorder.isTypeSupported(type));
    this.recorder = new MediaRecorder(stream, found ? { mimeType: found[0] } : undefined);
    this.chunks = [];
    this.recorder.addEventListener('dataavailable', (event) => {
      if (event.data.size) this.chunks.push(event.data);
    });
    this.recorder.start();
    this.startedAt = performance.now();
  }

  /** Stop; resolves to {blob, format, seconds}. The microphone is released. */
  stop() {
    const recorder = this.recorder;
    return new Promise((resolve) => {
      recorder.addEventListener('stop', () => {
        recorder.stream.getTracks().forEach((track) => track.stop());
        const type = recorder.mimeType || this.chunks[0]?.type || 'audio/webm';
        const blob = new Blob(this.chunks, { type });
        this.recorder = null;
        resolve({ blob, format: formatOf(type), seconds: (performance.now() - this.startedAt) / 1000 });
      }, { once: true });
      recorder.stop();
    });
  }

  /** Give the microphone back without keeping anything (e.g. the page is hidden). */
  cancel() {
    if (!this.recorder) return;
    this.recorder.stream.getTracks().forEach((track) => track.stop());
    if (this.recorder.state !== 'inactive') this.recorder.stop();
    this.recorder = null;
  }
}
