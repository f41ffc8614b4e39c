import assert from "node:assert/strict";
import { test } from "node:test";
import { baselineBars, formatScore, outlineLevel, outlineSegments, showsSelection } from "../src/neuron_layout.js";

const close = (a, b) => Math.abs(a - b) < 1e-12;

test("bars from a baseline below the scores show their differences", () => {
  const bars = baselineBars([4.74, 4.14, 3.9], 3.5);
  // the track spans baseline..top, so 4.74 fills it and 4.14 reaches half-way
  assert.ok(bars.every((b) => b.zero === 0 && b.left === 0));
  assert.ok(close(bars[0].width, 1));
  assert.ok(close(bars[1].width, (4.14 - 3.5) / (4.74 - 3.5)));
  // equal score steps give equal width steps: widths are linear in the scores
  const [a, b, c] = baselineBars([3, 2, 1], 0).map((bar) => bar.width);
  assert.ok(close(a - b, b - c));
});

test("a baseline among the scores makes diverging bars with their ends linear in the score", () => {
  const scores = [2, 1, -1];
  const bars = baselineBars(scores, 0.5);
  const zero = (0.5 - -1) / 3;
  assert.ok(bars.every((bar) => close(bar.zero, zero)));
  const ends = bars.map((bar, i) => (scores[i] >= 0.5 ? bar.left + bar.width : bar.left));
  assert.deepEqual(ends.map((e) => Math.round(e * 3 * 1e9) / 1e9), [3, 2, 0]);
  assert.ok(close(bars[2].left, 0) && close(bars[2].width, zero));
});

test("bars cope with no baseline, equal scores and no scores", () => {
  assert.deepEqual(baselineBars([2, 1], Number.NaN), [
    { left: 0, width: 1, zero: 0 },
    { left: 0, width: 0, zero: 0 },
  ]);
  assert.deepEqual(baselineBars([1, 1], 1), [
    { left: 0, width: 0, zero: 0 },
    { left: 0, width: 0, zero: 0 },
  ]);
  assert.deepEqual(baselineBars([], 0), []);
});

test("the outline follows the border of the cells at or above the level", () => {
  // one hot cell in the middle of a 3 x 3 map: its four sides
  const one = outlineSegments([0, 0, 0, 0, 9, 0, 0, 0, 0], 3, 3, 5);
  assert.deepEqual(new Set(one.map(String)), new Set(["1,1,2,1", "1,2,2,2", "1,1,1,2", "2,1,2,2"]));
  // two cells side by side: no edge between them, six outer edges
  const two = outlineSegments([9, 9, 0, 0], 2, 2, 5);
  assert.equal(two.length, 6);
  assert.ok(!two.some(([x0, , x1]) => x0 === 1 && x1 === 1));
  // the map's border closes an outline that reaches it
  assert.equal(outlineSegments([9], 1, 1, 9).length, 4);
  assert.deepEqual(outlineSegments([0, 0], 1, 2, 5), []);
  assert.throws(() => outlineSegments([1, 2, 3], 2, 2, 1), /expected 2 x 2/);
});

test("the outline level sits a fraction of the way from a map's lowest value to its highest", () => {
  assert.equal(outlineLevel(Uint8Array.from([10, 210, 50]), 0.5), 110);
  assert.equal(outlineLevel(Uint8Array.from([10, 210, 50])), 150);
  assert.equal(outlineLevel([]), 0);
});

test("a view shows the selection when it names the same layer and unit", () => {
  assert.ok(showsSelection(["blocks.1", 3], "blocks.1", 3));
  assert.ok(!showsSelection(["blocks.1", 3], "blocks.1", 4));
  assert.ok(!showsSelection(["blocks.0", 3], "blocks.1", 3));
  assert.ok(!showsSelection([], "blocks.1", 3));
  assert.ok(!showsSelection(undefined, "blocks.1", 3));
});

test("scores keep three significant digits", () => {
  assert.equal(formatScore(4.7432), "4.74");
  assert.equal(formatScore(0.031234), "0.0312");
  assert.equal(formatScore(-12.345), "-12.3");
  assert.equal(formatScore(1234.5), "1235");
  assert.equal(formatScore("x"), "");
});
