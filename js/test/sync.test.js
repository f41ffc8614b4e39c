import assert from "node:assert/strict";
import { test } from "node:test";
import { debouncedSaver } from "../src/sync.js";

function fakeModel() {
  const state = {};
  const saves = [];
  return {
    state,
    saves,
    set(name, value) { state[name] = value; },
    save_changes() { saves.push({ ...state }); },
  };
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("each trait keeps its own pending value", async () => {
  const model = fakeModel();
  const save = debouncedSaver(model, 20);
  save("threshold", 0.1);
  save("threshold", 0.4);
  save("opacity", 0.7); // must not replace the pending threshold
  assert.equal(model.saves.length, 0, "nothing is sent while the slider moves");
  await pause(50);
  assert.deepEqual(model.state, { threshold: 0.4, opacity: 0.7 });
  assert.equal(model.saves.length, 2);
});

test("flush sends pending values now; cancel drops them", async () => {
  const model = fakeModel();
  const save = debouncedSaver(model, 20);
  save("threshold", 0.3);
  save.flush();
  assert.deepEqual(model.saves, [{ threshold: 0.3 }]);
  save.flush();
  assert.equal(model.saves.length, 1, "a second flush has nothing to send");
  save("opacity", 0.2);
  save.cancel();
  await pause(50);
  assert.equal(model.saves.length, 1);
  assert.equal(model.state.opacity, undefined);
});
