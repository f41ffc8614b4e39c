// Label-list edits as pure functions: the widget applies them, Python re-validates them.

/** Labels with `text` appended (trimmed); unchanged when empty or already present. */
export function addLabel(labels, text) {
  const label = String(text).trim();
  if (!label || labels.includes(label)) return { labels, index: labels.indexOf(label) };
  return { labels: [...labels, label], index: labels.length };
}

/** Labels without entry `index`, and the selection that keeps pointing at the same label. */
export function removeLabel(labels, selected, index) {
  if (index < 0 || index >= labels.length) return { labels, selected };
  const next = labels.filter((_, i) => i !== index);
  let nextSelected = selected > index ? selected - 1 : selected;
  nextSelected = Math.max(0, Math.min(nextSelected, next.length - 1));
  return { labels: next, selected: nextSelected };
}

/** The selection after an arrow key, clamped to the list. */
export function moveSelection(selected, count, step) {
  if (count === 0) return 0;
  return Math.max(0, Math.min(count - 1, selected + step));
}
