import assert from "node:assert/strict";
import { test } from "node:test";
import {
  curveLayout,
  formatNumber,
  linearScale,
  niceTicks,
  pathData,
  signedBarLayout,
  stepDecimals,
} from "../src/chart_layout.js";

const close = (actual, expected, tolerance = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} is not ${expected}`);

test("ticks are round, evenly spaced and enclose the range", () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.5, 1]);
  assert.deepEqual(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0.52, 0.86, 4), [0.5, 0.6, 0.7, 0.8, 0.9]);
  assert.deepEqual(niceTicks(-0.31, 1.2, 4), [-0.5, 0, 0.5, 1, 1.5]);
  assert.deepEqual(niceTicks(0, 64, 4), [0, 20, 40, 60, 80]);
  assert.deepEqual(niceTicks(0, 0.3, 3), [0, 0.1, 0.2, 0.3]); // a value on a tick adds none beyond it
  assert.deepEqual(niceTicks(5, 1, 4), [1, 2, 3, 4, 5]); // reversed bounds
});

test("a flat or broken range still gets an axis", () => {
  assert.deepEqual(niceTicks(0, 0, 4), [-1, -0.5, 0, 0.5, 1]);
  const around = niceTicks(2, 2, 4);
  assert.ok(around[0] < 2 && around.at(-1) > 2, String(around));
  assert.deepEqual(niceTicks(Number.NaN, 1), [0, 1]);
});

test("tick labels print their step exactly", () => {
  assert.equal(stepDecimals(5), 0);
  assert.equal(stepDecimals(0.5), 1);
  assert.equal(stepDecimals(0.25), 2);
  assert.equal(stepDecimals(0.1 + 0.2), 1); // 0.30000000000000004
  assert.equal(stepDecimals(0), 0);
});

test("linear scales map the domain onto the range, either way round", () => {
  const x = linearScale([0, 10], [100, 300]);
  assert.equal(x(0), 100);
  assert.equal(x(5), 200);
  assert.equal(x(10), 300);
  const y = linearScale([0.5, 1], [200, 0]); // y grows down on screen
  assert.equal(y(1), 0);
  assert.equal(y(0.75), 100);
  assert.equal(linearScale([3, 3], [0, 10])(3), 5);
});

test("numbers print short", () => {
  assert.equal(formatNumber(0.123456), "0.123");
  assert.equal(formatNumber(-1.23456), "-1.23");
  assert.equal(formatNumber(12.345), "12.3");
  assert.equal(formatNumber(0), "0");
  assert.equal(formatNumber(1234.5), "1235");
});

test("signed bars start at the zero line and their lengths follow the magnitudes", () => {
  const values = [1.2, 0.4, -0.3, -0.9];
  const { zero, ticks, bars } = signedBarLayout(values, [100, 400]);
  assert.deepEqual(ticks.map((t) => t.value), [-1, -0.5, 0, 0.5, 1, 1.5]);
  assert.deepEqual(ticks.map((t) => t.label), ["-1.0", "-0.5", "0.0", "0.5", "1.0", "1.5"]);
  close(ticks[0].at, 100);
  close(ticks.at(-1).at, 400);
  close(zero, 100 + (1 / 2.5) * 300); // 0 sits 1 of the 2.5 units from the left end
  const perUnit = 300 / 2.5;
  for (const [i, bar] of bars.entries()) {
    close(bar.from, zero);
    close(bar.length, Math.abs(values[i]) * perUnit);
    assert.equal(bar.to > zero, values[i] > 0, `bar ${i} is on the wrong side of zero`);
  }
});

test("one-signed bars keep the zero line at an end of the axis", () => {
  const positive = signedBarLayout([2, 1], [0, 100]);
  close(positive.zero, 0);
  assert.ok(positive.bars.every((b) => b.to > b.from));
  const negative = signedBarLayout([-2, -1], [0, 100]);
  close(negative.zero, 100);
  assert.ok(negative.bars.every((b) => b.to < b.from));
  const none = signedBarLayout([], [0, 100]);
  assert.deepEqual(none.bars, []);
  assert.ok(none.ticks.length >= 2);
  assert.deepEqual(signedBarLayout([Number.NaN], [0, 100]).bars.map((b) => b.length), [0]);
});

test("a curve has one point per datum inside its box and ticks that enclose the data", () => {
  const box = { left: 60, right: 400, top: 30, bottom: 220 };
  const xs = [0, 1, 4, 12, 64];
  const ys = [0.5, 0.62, 0.86, 0.88, 0.84];
  const { points, xTicks, yTicks } = curveLayout(xs, ys, box);
  assert.equal(points.length, xs.length);
  for (const { x, y } of points) {
    assert.ok(x >= box.left - 1e-9 && x <= box.right + 1e-9 && y >= box.top - 1e-9 && y <= box.bottom + 1e-9);
  }
  close(points[0].x, box.left); // the first tick is 0
  assert.ok(points[2].y < points[0].y, "higher accuracy is drawn higher");
  assert.ok(xTicks[0].value <= 0 && xTicks.at(-1).value >= 64);
  assert.ok(yTicks[0].value <= 0.5 && yTicks.at(-1).value >= 0.88);
  close(xTicks[0].at, box.left);
  close(yTicks[0].at, box.bottom);
  assert.deepEqual(curveLayout([1, 2, 3], [0.5], box).points.length, 1); // uneven inputs: the shorter
});

test("path data has one command per point", () => {
  assert.equal(pathData([{ x: 1, y: 2 }, { x: 3.456, y: 4 }, { x: 5, y: 6 }]), "M1.00 2.00 L3.46 4.00 L5.00 6.00");
  assert.equal(pathData([]), "");
});
