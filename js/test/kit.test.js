import assert from "node:assert/strict";
import { test } from "node:test";

import { subscribe } from "../src/kit.js";

function fakeModel() {
  const handlers = new Map();
  return {
    handlers,
    on(event, handler) { handlers.set(event, [...(handlers.get(event) || []), handler]); },
    off(event, handler) { handlers.set(event, (handlers.get(event) || []).filter((f) => f !== handler)); },
    fire(event) { for (const f of handlers.get(event) || []) f(); },
  };
}

test("subscribe registers every space-separated event and removes them all", () => {
  const model = fakeModel();
  const calls = [];
  const draw = () => calls.push("draw");
  const unsubscribe = subscribe(model, [["change:a change:b", draw], ["change:error", () => calls.push("error")]]);
  model.fire("change:a");
  model.fire("change:b");
  model.fire("change:error");
  model.fire("change:c");
  assert.deepEqual(calls, ["draw", "draw", "error"]);
  unsubscribe();
  model.fire("change:a");
  model.fire("change:error");
  assert.equal(calls.length, 3);
  assert.ok([...model.handlers.values()].every((list) => list.length === 0));
});
