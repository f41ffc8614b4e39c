import assert from "node:assert/strict";
import { test } from "node:test";
import { cellColour, divergingColour, dropPoints, extent, formatValue, gridScale, inkOn, mapSlice, scaleBarRGBA, signedOverlayRGBA, stepCell } from "../src/heads_layout.js";

const array = (values, shape) => ({ data: Float32Array.from(values), shape });

test("the grid is coloured by variance from 0, or by the accuracy drop around 0", () => {
  const variance = array([0, 1, 2, 4], [2, 2]);
  const ablation = array([0.9, 0.8, 0.95, 1.0], [2, 2]);
  const byVariance = gridScale("variance", variance, ablation, 0.9);
  assert.deepEqual([byVariance.kind, byVariance.low, byVariance.high], ["sequential", 0, 4]);
  const byDrop = gridScale("ablation", variance, ablation, 0.9);
  assert.equal(byDrop.kind, "diverging");
  assert.deepEqual(byDrop.values.map((v) => Math.round(v)), [0, 10, -5, -10]);
  assert.equal(Math.round(byDrop.high), 10);
  assert.equal(gridScale("ablation", variance, null, null).kind, "sequential"); // nothing to show: variance
  const colours = byVariance.values.map((v) => cellColour(v, byVariance).join());
  assert.equal(new Set(colours).size, 4);
  assert.deepEqual(cellColour(0, byVariance), [68, 1, 84]); // viridis' low end
});

test("an unchanged accuracy is a drop of 0 points, even through float32", () => {
  const baseline = 0.9666666666666667;
  assert.equal(dropPoints(baseline, Math.fround(baseline)), 0);
  assert.equal(Object.is(dropPoints(0.5, 0.5), 0), true); // never -0
  assert.equal(dropPoints(baseline, Math.fround(0.95)), 1.6667);
  assert.equal(dropPoints(baseline, Math.fround(0.9833333)), -1.6667);
});

test("the diverging scale is blue below zero, near white at zero, red above", () => {
  const [blue, white, red] = [divergingColour(-1), divergingColour(0), divergingColour(1)];
  assert.ok(blue[2] > blue[0] && red[0] > red[2]);
  assert.deepEqual(white, [247, 247, 247]);
  assert.deepEqual(divergingColour(5), red);
  assert.equal(inkOn(white), "#000000");
  assert.equal(inkOn([68, 1, 84]), "#ffffff");
});

test("signed overlays show the sign as hue and the magnitude as opacity", () => {
  const map = Float32Array.from([-2, 0, 1, 2]);
  assert.equal(extent(map), 2);
  const pixels = signedOverlayRGBA(map, 2, 2, { opacity: 1 });
  assert.ok(pixels[2] > pixels[0]); // negative: blue
  assert.equal(pixels[3], 255);
  assert.equal(pixels[7], 0); // zero: clear
  assert.ok(pixels[8] > pixels[10] && pixels[11] === 128); // half the top: half opaque red
  assert.throws(() => signedOverlayRGBA(map, 3, 2), /expected 3 x 2/);
  const bar = scaleBarRGBA("diverging", 3, 1);
  assert.ok(bar[2] > bar[0] && bar[8] > bar[10]);
  assert.deepEqual(Array.from(bar.slice(4, 7)), [247, 247, 247]);
});

test("arrow keys move across the grid and stop at its edges", () => {
  assert.deepEqual(stepCell([0, 0], "ArrowRight", 6, 4), [0, 1]);
  assert.deepEqual(stepCell([0, 3], "ArrowRight", 6, 4), [0, 3]);
  assert.deepEqual(stepCell([0, 0], "ArrowUp", 6, 4), [0, 0]);
  assert.deepEqual(stepCell([2, 1], "ArrowDown", 6, 4), [3, 1]);
  assert.equal(stepCell([2, 1], "Enter", 6, 4), null);
  assert.equal(stepCell([0, 0], "ArrowDown", 0, 0), null);
});

test("numbers read with three digits and a real minus sign", () => {
  assert.equal(formatValue(0.012345), "0.0123");
  assert.equal(formatValue(-0.012345, true), "−0.0123");
  assert.equal(formatValue(3.5, true), "+3.50");
  assert.equal(formatValue(0, true), "0");
  assert.equal(formatValue(NaN), "–");
});

test("one head's map is sliced out of every head's maps", () => {
  const maps = array(Array.from({ length: 2 * 3 * 2 * 2 * 2 }, (_, i) => i), [2, 3, 2, 2, 2]);
  const slice = mapSlice(maps, 1, 2, 1);
  assert.deepEqual(slice.shape, [2, 2]);
  assert.deepEqual(Array.from(slice.data), [44, 45, 46, 47]);
  assert.equal(mapSlice(maps, 2, 0, 0), null);
  assert.equal(mapSlice(null, 0, 0, 0), null);
});
