// Arrays cross the widget boundary as {view, dtype, shape}: `view` is the binary buffer
// ipywidgets delivers (a DataView), never base64 text. The one codec module of the front end.

const TYPED = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/** Decode {view, dtype, shape} into {data: TypedArray, dtype, shape}; null stays null. */
export function decodeArray(value) {
  if (value == null) return null;
  const { view, dtype, shape } = value;
  const Typed = TYPED[dtype];
  if (!Typed) throw new Error(`unsupported array dtype "${dtype}"`);
  if (!Array.isArray(shape)) throw new Error("array shape must be a list of sizes");
  const size = shape.reduce((a, b) => a * b, 1);
  let buffer, offset, bytes;
  if (view instanceof ArrayBuffer) [buffer, offset, bytes] = [view, 0, view.byteLength];
  else if (ArrayBuffer.isView(view)) [buffer, offset, bytes] = [view.buffer, view.byteOffset, view.byteLength];
  else throw new Error("array view must be a DataView, typed array or ArrayBuffer");
  if (bytes !== size * Typed.BYTES_PER_ELEMENT) {
    throw new Error(`array of shape [${shape}] and dtype ${dtype} needs ${size * Typed.BYTES_PER_ELEMENT} bytes, got ${bytes}`);
  }
  // Zero-copy when the offset is aligned for the element type; otherwise copy the bytes once.
  const data = offset % Typed.BYTES_PER_ELEMENT === 0
    ? new Typed(buffer, offset, size)
    : new Typed(new Uint8Array(buffer, offset, bytes).slice().buffer);
  return { data, dtype, shape: [...shape] };
}

/** Encode a typed array and its shape as {view: DataView, dtype, shape} for Python. */
export function encodeArray(data, shape) {
  const dtype = Object.keys(TYPED).find((name) => data instanceof TYPED[name]);
  if (!dtype) throw new Error("encodeArray needs a typed array");
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== data.length) throw new Error(`shape [${shape}] does not match ${data.length} elements`);
  return { view: new DataView(data.buffer, data.byteOffset, data.byteLength), dtype, shape: [...shape] };
}
