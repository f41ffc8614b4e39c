import assert from "node:assert/strict";
import { test } from "node:test";
import { legendDigits, legendText, mapSource, methodInfo, panes } from "../src/surgery_layout.js";

const METHODS = [
  { name: "surgery", title: "CLIP Surgery", value: "similarity" },
  { name: "legrad", title: "LeGrad", value: "relevance" },
];

test("a method's title and units come from the methods list", () => {
  assert.deepEqual(methodInfo(METHODS, "legrad"), { name: "legrad", title: "LeGrad", value: "relevance" });
  assert.deepEqual(methodInfo(undefined, "gem"), { name: "gem", title: "gem", value: "similarity" });
});

test("the compared method gets a pane only side by side", () => {
  assert.deepEqual(panes({ method: "surgery", compare: "raw", sideBySide: false }), [{ role: "method", name: "surgery" }]);
  assert.deepEqual(panes({ method: "surgery", compare: "raw", sideBySide: true }), [
    { role: "method", name: "surgery" },
    { role: "compare", name: "raw" },
  ]);
  assert.equal(panes({ method: "surgery", compare: "", sideBySide: true }).length, 1);
});

test("each method's maps are found in the array computed for it, across a switch", () => {
  const owners = { maps: "surgery", compare_maps: "raw" };
  assert.equal(mapSource("surgery", owners), "maps");
  assert.equal(mapSource("raw", owners), "compare_maps"); // switched in the page, before Python answers
  assert.equal(mapSource("gem", owners), null); // chosen, not computed yet
  assert.equal(mapSource("", owners), null);
  assert.equal(mapSource("raw", { maps: "raw", compare_maps: "raw" }), "maps");
});

test("legends show about three significant digits, however small the values", () => {
  assert.equal(legendDigits({ low: [0], high: [0.46] }, 0), 3);
  assert.equal(legendDigits({ low: [0], high: [0.0061] }, 0), 5);
  assert.equal(legendDigits({ low: [0, 1e-9], high: [0.5, 2e-9] }, 1), 6);
  assert.equal(legendDigits(undefined, 0), 3);
  const relevance = legendText(methodInfo(METHODS, "legrad"), { kind: "joint", low: [0], high: [0.006112], floor: false }, "a red star", 0);
  assert.deepEqual(relevance, {
    caption: "LeGrad: a red star",
    low: "0.00000",
    high: "0.00611",
    note: "relevance to the label; one scale for all labels",
  });
  const surgery = legendText(methodInfo(METHODS, "surgery"), { kind: "label", low: [0, 0], high: [0.2, 0.4], floor: true }, "face", 1);
  assert.equal(surgery.low, "≤ 0.000");
  assert.equal(surgery.note, "similarity to the label; each label stretched on its own");
  assert.deepEqual(legendText(methodInfo(METHODS, "surgery"), undefined, null, -1), {
    caption: "CLIP Surgery: no label selected", low: "low", high: "high", note: "",
  });
});
