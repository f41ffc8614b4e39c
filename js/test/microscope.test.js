import assert from "node:assert/strict";
import { test } from "node:test";

import "../src/microscope.js";

import { gridCrop } from "../src/render.js";

const { parseHash, unitHash, filterUnits, findUnit, decodeBytes } = globalThis.microscopeHelpers;

test("decodeBytes reads the base64 heat the site's data carry", () => {
  assert.deepEqual([...decodeBytes(Buffer.from([0, 7, 255, 128]).toString("base64"))], [0, 7, 255, 128]);
  assert.equal(decodeBytes("").length, 0);
});

test("gridCrop maps a crop box in pixels to the grid cells under it", () => {
  // a 64 px image over an 8 x 8 grid: 8 px per cell
  assert.deepEqual(gridCrop([16, 8, 48, 40], 64, 64, 8, 8), [2, 1, 4, 4]);
  // the whole image is the whole grid, whatever the sizes
  assert.deepEqual(gridCrop([0, 0, 224, 160], 224, 160, 7, 14), [0, 0, 14, 7]);
});

test("parseHash reads #layer/unit, keeping dots in the layer name", () => {
  assert.deepEqual(parseHash("#blocks.1/3"), { layer: "blocks.1", unit: 3 });
  assert.deepEqual(parseHash("blocks.4/12"), { layer: "blocks.4", unit: 12 });
  assert.deepEqual(parseHash("#a/b/7"), { layer: "a/b", unit: 7 });
  assert.deepEqual(parseHash("#blocks%2E1/0"), { layer: "blocks.1", unit: 0 });
});

test("parseHash gives null for the index and malformed addresses", () => {
  for (const hash of ["", "#", "#blocks.1", "#blocks.1/", "#/3", "#blocks.1/x", "#blocks.1/-1", "#blocks.1/1.5"]) {
    assert.equal(parseHash(hash), null, hash);
  }
  assert.equal(parseHash(undefined), null);
});

test("unitHash round-trips through parseHash", () => {
  assert.equal(unitHash("blocks.1", 3), "#blocks.1/3");
  for (const [layer, unit] of [["blocks.1", 3], ["visual.layer 4", 0], ["a/b", 9]]) {
    assert.deepEqual(parseHash(unitHash(layer, unit)), { layer, unit });
  }
});

test("filterUnits matches every word of the query in the label, case-insensitive", () => {
  const units = [
    { unit: 0, label: "a red circle" },
    { unit: 1, label: "the word CAT written" },
    { unit: 2, label: "a blue circle" },
    { unit: 3, label: "" },
  ];
  assert.deepEqual(filterUnits(units, "").map((u) => u.unit), [0, 1, 2, 3]);
  assert.deepEqual(filterUnits(units, "  ").map((u) => u.unit), [0, 1, 2, 3]);
  assert.deepEqual(filterUnits(units, "circle").map((u) => u.unit), [0, 2]);
  assert.deepEqual(filterUnits(units, "CIRCLE red").map((u) => u.unit), [0]);
  assert.deepEqual(filterUnits(units, "cat").map((u) => u.unit), [1]);
  assert.deepEqual(filterUnits(units, "zebra"), []);
  assert.notEqual(filterUnits(units, ""), units, "a copy, not the caller's array");
});

test("findUnit looks up a unit of a layer", () => {
  const data = { layers: [{ name: "blocks.1", units: [{ unit: 3, label: "x" }] }] };
  assert.equal(findUnit(data, "blocks.1", 3).label, "x");
  assert.equal(findUnit(data, "blocks.1", 4), null);
  assert.equal(findUnit(data, "blocks.2", 3), null);
});
