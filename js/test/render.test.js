import assert from "node:assert/strict";
import { test } from "node:test";
import { COLORMAPS, colormapLUT } from "../src/colormap.js";
import { debounce, imageRGBA, legendEnds, legendRGBA, overlayRGBA } from "../src/render.js";

test("colormaps have 256 RGB entries and the right ends", () => {
  for (const name of COLORMAPS) assert.equal(colormapLUT(name).length, 768);
  const jet = colormapLUT("jet");
  assert.deepEqual(Array.from(jet.slice(0, 3)), [0, 0, 128]);
  assert.deepEqual(Array.from(jet.slice(765)), [128, 0, 0]);
  assert.equal(colormapLUT("no-such-map"), jet);
  const gray = colormapLUT("gray");
  for (let i = 1; i < 256; i++) assert.ok(gray[i * 3] >= gray[(i - 1) * 3]);
  assert.equal(gray[255 * 3], 255);
});

test("overlay hides values below the cutoff and colours the rest", () => {
  const lut = colormapLUT("gray");
  const map = Uint8Array.from([0, 100, 200, 255]);
  const pixels = overlayRGBA(map, 2, 2, { cutoff: 0.5, lut, opacity: 0.5 });
  assert.deepEqual(Array.from(pixels.slice(0, 8)), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(pixels.slice(8, 12)), [200, 200, 200, 128]);
  assert.deepEqual(Array.from(pixels.slice(12)), [255, 255, 255, 128]);
  const edge = overlayRGBA(map, 2, 2, { cutoff: 200 / 255, lut, opacity: 1 });
  assert.equal(edge[11], 255, "a value exactly at the cutoff is shown");
  assert.equal(edge[7], 0);
  const all = overlayRGBA(map, 2, 2, { cutoff: 0, lut, opacity: 1 });
  assert.equal(all[3], 255);
  assert.throws(() => overlayRGBA(map, 3, 2, { lut }), /expected 3 x 2/);
});

test("a fading overlay is clear at the cutoff and reaches its opacity at the top", () => {
  const lut = colormapLUT("gray");
  const pixels = overlayRGBA(Uint8Array.from([0, 51, 153, 255]), 2, 2, { cutoff: 0.2, lut, opacity: 0.8, fade: true });
  assert.deepEqual([3, 7, 11, 15].map((i) => pixels[i]), [0, 0, 102, 204]);
});

test("legend runs low to high; image gets an opaque alpha", () => {
  const lut = colormapLUT("gray");
  const legend = legendRGBA(lut, 4, 1);
  assert.equal(legend[0], 0);
  assert.equal(legend[12], 255);
  assert.deepEqual(Array.from(imageRGBA(Uint8Array.from([1, 2, 3]), 1, 1)), [1, 2, 3, 255]);
});

test("debounce coalesces calls, flushes and cancels", async () => {
  const calls = [];
  const fn = debounce((value) => calls.push(value), 20);
  fn(1);
  fn(2);
  fn(3);
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.deepEqual(calls, [3]);
  fn(4);
  fn.flush();
  assert.deepEqual(calls, [3, 4]);
  fn(5);
  fn.cancel();
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.deepEqual(calls, [3, 4]);
});

test("viridis and inferno run dark to bright; opacity is clamped", () => {
  for (const name of ["viridis", "inferno"]) {
    const lut = colormapLUT(name);
    const sum = (i) => lut[i * 3] + lut[i * 3 + 1] + lut[i * 3 + 2];
    assert.ok(sum(0) < 200 && sum(255) > 500, name);
  }
  assert.deepEqual(Array.from(colormapLUT("viridis").slice(0, 3)), [68, 1, 84]);
  const pixels = overlayRGBA(Uint8Array.from([255]), 1, 1, { cutoff: 0, lut: colormapLUT("jet"), opacity: 3 });
  assert.equal(pixels[3], 255);
});

test("legend ends carry the similarities of the selected label's scale", () => {
  const joint = { kind: "joint", low: [0], high: [0.2346], floor: true };
  assert.deepEqual(legendEnds(joint, 3, { floor: joint.floor }), ["≤ 0.000", "0.235"]);
  const perLabel = { kind: "label", low: [0.1, -0.05], high: [0.3, 0.12], floor: false };
  assert.deepEqual(legendEnds(perLabel, 1), ["-0.050", "0.120"]);
  assert.deepEqual(legendEnds(perLabel, 0, { digits: 1 }), ["0.1", "0.3"]);
  assert.deepEqual(legendEnds(undefined, 0), ["low", "high"]);
  assert.deepEqual(legendEnds({ low: [NaN], high: [1] }, 0), ["low", "high"]);
});
