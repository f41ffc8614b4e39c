import assert from "node:assert/strict";
import { test } from "node:test";
import {
  cellAt, cellSize, column, extent, fixedBars, formatValue, heat, heatOnGray, inkOn, legendLabels, mutedGray, row, stepPosition,
} from "../src/grid_layout.js";

test("cells are readable: the grid fills its target, never under the minimum a cell", () => {
  assert.equal(cellSize([4, 4]), 80);
  assert.equal(cellSize([7, 7]), 48); // 320 / 7 = 45: the minimum wins
  assert.equal(cellSize([14, 14]), 48);
  assert.equal(cellSize([2, 3], { target: 300, min: 10 }), 100);
  assert.equal(cellSize(null), 320);
});

test("a pointer finds its cell, and nothing outside the grid", () => {
  assert.deepEqual(cellAt(0, 0, 80, [4, 4]), [0, 0]);
  assert.deepEqual(cellAt(170, 79.9, 80, [4, 4]), [0, 2]);
  assert.deepEqual(cellAt(319, 319, 80, [4, 4]), [3, 3]);
  assert.equal(cellAt(320, 10, 80, [4, 4]), null);
  assert.equal(cellAt(-1, 10, 80, [4, 4]), null);
  assert.equal(cellAt(10, 10, 80, null), null);
});

test("arrow keys move the position and stop at the edges; the first press picks the corner", () => {
  assert.deepEqual(stepPosition(null, "ArrowDown", [4, 4]), [0, 0]);
  assert.deepEqual(stepPosition([1, 1], "ArrowRight", [4, 4]), [1, 2]);
  assert.deepEqual(stepPosition([0, 1], "ArrowUp", [4, 4]), [0, 1]);
  assert.deepEqual(stepPosition([3, 3], "ArrowDown", [4, 4]), [3, 3]);
  assert.deepEqual(stepPosition([2, 0], "ArrowLeft", [4, 4]), [2, 0]);
  assert.equal(stepPosition([1, 1], "Enter", [4, 4]), undefined);
  assert.equal(stepPosition([1, 1], "ArrowUp", null), undefined);
});

test("the signed heat: red towards, blue away, clear at zero; clamped", () => {
  assert.deepEqual(heat(1), { rgb: [178, 24, 43], alpha: 0.85 });
  assert.deepEqual(heat(-0.5).rgb, [33, 102, 172]);
  assert.equal(heat(-0.5).alpha, 0.425);
  assert.equal(heat(0).alpha, 0);
  assert.deepEqual(heat(5), heat(1));
  assert.deepEqual(heat(Number.NaN), heat(0));
  assert.deepEqual(heatOnGray(0), [128, 128, 128]);
  const [r, , b] = heatOnGray(0.6);
  assert.ok(r - b > 60); // clearly red
  assert.equal(extent([0.5, -3, 2]), 3);
  assert.ok(extent([0, 0]) > 0);
});

test("numbers carry their sign and no negative zero", () => {
  assert.equal(formatValue(2.1234, { signed: true }), "+2.12");
  assert.equal(formatValue(-0.0004, { signed: true }), "0.000");
  assert.equal(formatValue(-4.1), "−4.10");
  assert.equal(formatValue(123.4), "123");
  assert.equal(formatValue(Number.NaN), "–");
  assert.deepEqual(legendLabels(4.1), ["−4.10", "0", "+4.10"]);
});

test("bars share one scale, so positions compare", () => {
  const [a, b] = fixedBars([2, 1], 4);
  assert.deepEqual(a, { left: 0, width: 0.5, zero: 0 });
  assert.deepEqual(b, { left: 0, width: 0.25, zero: 0 });
  const [up, down] = fixedBars([2, -4], 4, { signed: true });
  assert.deepEqual(up, { left: 0.5, width: 0.25, zero: 0.5 });
  assert.deepEqual(down, { left: 0, width: 0.5, zero: 0.5 });
  assert.deepEqual(fixedBars([-1], 4)[0], { left: 0, width: 0, zero: 0 });
});

test("rows and columns of a decoded array", () => {
  const array = { data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [3, 2] };
  assert.deepEqual(row(array, 1), [3, 4]);
  assert.deepEqual(column(array, 1), [2, 4, 6]);
  assert.deepEqual(column(array, 2), []);
  assert.deepEqual(row(null, 0), []);
});

test("ink and the muted base image", () => {
  assert.equal(inkOn([200, 200, 200]), "#000000");
  assert.equal(inkOn([33, 102, 172]), "#ffffff");
  const out = mutedGray(new Uint8Array([255, 0, 0, 0, 0, 0]), 2, 1);
  assert.equal(out.length, 8);
  assert.equal(out[3], 255);
  assert.ok(out[0] === out[1] && out[1] === out[2]);
  assert.ok(out[4] > 0 && out[4] < 128); // black is lifted towards mid-gray
});
