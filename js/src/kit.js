// What every widget's front end shares: the error banner, the subscription to model events
// (removed, all of them, when the view goes), and painting uint8 pixels on a canvas.
import { h } from "./dom.js";
import { imageRGBA } from "./render.js";

/**
 * The banner that shows the model's `error` (plus any messages `extra()` returns, e.g. a trait
 * the view could not draw). `update()` redraws it; it hides when there is nothing to say.
 */
export function errorBanner(model, extra = () => []) {
  const el = h("div", { class: "cw-error", role: "alert", hidden: true });
  const update = () => {
    const message = [model.get("error"), ...extra()].filter(Boolean).join("\n");
    el.textContent = message;
    el.hidden = !message;
  };
  return { el, update };
}

/**
 * Subscribe `[events, handler]` pairs (events space-separated, e.g. "change:a change:b") to the
 * model; returns the function that removes every one of them (a view's clean-up).
 */
export function subscribe(model, handlers) {
  const pairs = handlers.flatMap(([events, handler]) => events.split(" ").map((event) => [event, handler]));
  for (const [event, handler] of pairs) model.on(event, handler);
  return () => {
    for (const [event, handler] of pairs) model.off(event, handler);
  };
}

/** Paint `rgb` (H * W * 3 uint8, row-major) on `canvas`, sized to the image. */
export function paintRGB(canvas, rgb, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(new ImageData(imageRGBA(rgb, width, height), width, height), 0, 0);
}

/** Paint a decoded (H, W, 3) uint8 array, or slice `index` of an (n, H, W, 3) one, on `canvas`. */
export function paintArray(canvas, array, index = null) {
  const [height, width] = index === null ? array.shape : array.shape.slice(1);
  const size = height * width * 3;
  const rgb = index === null ? array.data : array.data.subarray(index * size, (index + 1) * size);
  paintRGB(canvas, rgb, width, height);
}
