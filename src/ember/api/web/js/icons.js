// Line icons drawn here (no icon font, no emoji: both depend on what fonts a system has). Each is a list
// of SVG shapes on a 24×24 grid, stroked in the current text colour; index.html inlines its own.

const SVG_NS = 'http://www.w3.org/2000/svg';

const SHAPES = {
  mic: [
    ['rect', { x: 9, y: 3, width: 6, height: 11, rx: 3 }],
    ['path', { d: 'M5 11a7 7 0 0 0 14 0M12 18v3M8 21h8' }],
  ],
};

/** An <svg class="icon"> for `name`, hidden from assistive technology (its control has the label). */
export function icon(name) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  for (const [tag, attrs] of SHAPES[name]) {
    const shape = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) shape.setAttribute(key, String(value));
    svg.append(shape);
  }
  return svg;
}
