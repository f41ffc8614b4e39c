import assert from "node:assert/strict";
import { test } from "node:test";
import { addLabel, moveSelection, removeLabel } from "../src/labels.js";

test("addLabel trims, skips empty and duplicate labels", () => {
  assert.deepEqual(addLabel(["cat"], "  dog "), { labels: ["cat", "dog"], index: 1 });
  const same = ["cat"];
  assert.equal(addLabel(same, "   ").labels, same);
  assert.deepEqual(addLabel(same, "cat"), { labels: same, index: 0 });
});

test("removeLabel keeps the selection on the same label", () => {
  assert.deepEqual(removeLabel(["a", "b", "c"], 2, 0), { labels: ["b", "c"], selected: 1 });
  assert.deepEqual(removeLabel(["a", "b", "c"], 2, 2), { labels: ["a", "b"], selected: 1 });
  assert.deepEqual(removeLabel(["a"], 0, 0), { labels: [], selected: 0 });
  assert.deepEqual(removeLabel(["a"], 0, 5), { labels: ["a"], selected: 0 });
});

test("moveSelection clamps to the list", () => {
  assert.equal(moveSelection(0, 3, -1), 0);
  assert.equal(moveSelection(1, 3, 1), 2);
  assert.equal(moveSelection(2, 3, 1), 2);
  assert.equal(moveSelection(0, 0, 1), 0);
});
