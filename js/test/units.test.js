import assert from "node:assert/strict";
import { test } from "node:test";
import { barWidths, parseUnit, signedBars, stepLayer, stepUnit } from "../src/units.js";

test("units wrap around the layer both ways", () => {
  assert.equal(stepUnit(0, -1, 10), 9);
  assert.equal(stepUnit(9, 1, 10), 0);
  assert.equal(stepUnit(4, 3, 10), 7);
  assert.equal(stepUnit(2, -25, 10), 7);
  assert.equal(stepUnit(3, 1, 0), 0);
});

test("layers step and stop at the ends", () => {
  const names = ["conv1", "blocks.0", "blocks.1"];
  assert.equal(stepLayer(names, "blocks.0", 1), "blocks.1");
  assert.equal(stepLayer(names, "blocks.1", 1), "blocks.1");
  assert.equal(stepLayer(names, "conv1", -1), "conv1");
  assert.equal(stepLayer(names, "unknown", 1), "blocks.0");
  assert.equal(stepLayer([], "x", 1), "x");
});

test("typed unit numbers are parsed, not clamped: Python names the valid range", () => {
  assert.equal(parseUnit(" 12 "), 12);
  assert.equal(parseUnit("9999"), 9999);
  assert.equal(parseUnit("-3"), -3);
  assert.equal(parseUnit("twelve"), null);
  assert.equal(parseUnit("12abc"), null);
  assert.equal(parseUnit("1.5"), null);
  assert.equal(parseUnit(""), null);
});

test("bars are relative to the largest magnitude", () => {
  assert.deepEqual(barWidths([2, 1, -4]), [0.5, 0.25, 1]);
  assert.deepEqual(barWidths([0, 0]), [0, 0]);
});

test("signed bars grow both ways from a zero in the middle", () => {
  assert.deepEqual(signedBars([2, -1, -4]), [
    { left: 0.5, width: 0.25, zero: 0.5 },
    { left: 0.375, width: 0.125, zero: 0.5 },
    { left: 0, width: 0.5, zero: 0.5 },
  ]);
  // one sign: the zero moves to the track's end and the largest bar fills it
  assert.deepEqual(signedBars([0.5, 1]), [{ left: 0, width: 0.5, zero: 0 }, { left: 0, width: 1, zero: 0 }]);
  assert.deepEqual(signedBars([-1, -0.25]), [{ left: 0, width: 1, zero: 1 }, { left: 0.75, width: 0.25, zero: 1 }]);
});
