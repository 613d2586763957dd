// The one DOM helper every module shares (render.js passes it on to the modules that import it from there).

/** createElement with a class, attributes and children (strings become text). */
export function el(tag, { cls, attrs = {}, text } = {}, ...children) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  for (const child of children) if (child) node.append(child);
  return node;
}
