import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeArray, encodeArray } from "../src/codecs.js";

test("uint8 and float32 round trip through encode/decode", () => {
  for (const data of [Uint8Array.from([1, 2, 3, 4, 5, 6]), Float32Array.from([0.5, -1, 2, 3.25, 4, 5])]) {
    const decoded = decodeArray(encodeArray(data, [2, 3]));
    assert.deepEqual(Array.from(decoded.data), Array.from(data));
    assert.deepEqual(decoded.shape, [2, 3]);
    assert.equal(decoded.data.constructor, data.constructor);
  }
});

test("aligned views decode without a copy", () => {
  const buffer = new ArrayBuffer(16);
  const decoded = decodeArray({ view: new DataView(buffer, 8, 8), dtype: "float32", shape: [2] });
  new Float32Array(buffer, 8, 2)[1] = 7;
  assert.equal(decoded.data[1], 7);
  assert.equal(decoded.data.buffer, buffer);
});

test("unaligned views are copied and still read right", () => {
  const bytes = new Uint8Array(9);
  new DataView(bytes.buffer).setFloat32(1, 1.5, true);
  const decoded = decodeArray({ view: new DataView(bytes.buffer, 1, 4), dtype: "float32", shape: [1] });
  assert.equal(decoded.data[0], 1.5);
});

test("bad input gets a clear error; null passes through", () => {
  assert.equal(decodeArray(null), null);
  assert.throws(() => decodeArray({ view: new DataView(new ArrayBuffer(4)), dtype: "complex64", shape: [1] }), /unsupported array dtype/);
  assert.throws(() => decodeArray({ view: new DataView(new ArrayBuffer(5)), dtype: "uint8", shape: [2, 2] }), /needs 4 bytes, got 5/);
  assert.throws(() => encodeArray(new Uint8Array(3), [2, 2]), /does not match/);
});

test("encodeArray keeps a subarray's offset and decodes other dtypes", () => {
  const whole = Int32Array.from([9, -1, 2, 3, 9]);
  const encoded = encodeArray(whole.subarray(1, 4), [3]);
  assert.equal(encoded.view.byteOffset, 4);
  assert.equal(encoded.view.byteLength, 12);
  assert.equal(encoded.dtype, "int32");
  const decoded = decodeArray(encoded);
  assert.deepEqual(Array.from(decoded.data), [-1, 2, 3]);
  assert.ok(decoded.data instanceof Int32Array);
  assert.throws(() => decodeArray({ view: encoded.view, dtype: "int32", shape: "3" }), /shape/);
});
