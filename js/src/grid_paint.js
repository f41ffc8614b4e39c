// ActivationGridWidget's canvas painting: icons in their cells, the signed attribution heat over
// the muted image, its legend, and the grid lines with the hovered and selected cells.
import { paintArray } from "./kit.js";
import { extent, formatValue, heat, heatOnGray, inkOn, mutedGray } from "./grid_layout.js";

/** A canvas holding a decoded (H, W, 3) image, or slice `index` of an (n, H, W, 3) array. */
export function pictureOf(array, index = null) {
  const canvas = document.createElement("canvas");
  paintArray(canvas, array, index);
  return canvas;
}

/** Each position's icon in its cell (row-major), a pixel of gap around each. */
export function paintIcons(context, icons, [rows, cols], side) {
  for (let i = 0; i < Math.min(icons.shape[0], rows * cols); i++) {
    const [r, c] = [Math.floor(i / cols), i % cols];
    context.drawImage(pictureOf(icons, i), c * side + 1, r * side + 1, side - 2, side - 2);
  }
}

/**
 * The image in muted gray, each cell tinted by its value's heat (scaled to the largest
 * magnitude), and the value written in the cell when it is large enough to read.
 */
export function paintHeat(context, image, values, [rows, cols], side) {
  if (image) {
    const [height, width] = image.shape;
    const gray = document.createElement("canvas");
    gray.width = width;
    gray.height = height;
    gray.getContext("2d").putImageData(new ImageData(mutedGray(image.data, width, height), width, height), 0, 0);
    context.drawImage(gray, 0, 0, cols * side, rows * side);
  }
  if (values.length !== rows * cols) return;
  const limit = extent(values);
  context.font = `${Math.max(10, Math.min(14, Math.round(side / 5)))}px sans-serif`;
  context.textAlign = "center";
  context.textBaseline = "middle";
  values.forEach((value, i) => {
    const [r, c] = [Math.floor(i / cols), i % cols];
    const { rgb, alpha } = heat(value / limit);
    context.fillStyle = `rgba(${rgb.join(", ")}, ${alpha})`;
    context.fillRect(c * side, r * side, side, side);
    if (side >= 40) {
      context.fillStyle = inkOn(heatOnGray(value / limit));
      context.fillText(formatValue(value, { signed: true }), (c + 0.5) * side, (r + 0.5) * side);
    }
  });
}

/** The legend's colour bar, from the most negative value on the left to the most positive. */
export function paintLegend(canvas) {
  const context = canvas.getContext("2d");
  for (let x = 0; x < canvas.width; x++) {
    context.fillStyle = `rgb(${heatOnGray((2 * x) / (canvas.width - 1) - 1).join(", ")})`;
    context.fillRect(x, 0, 1, canvas.height);
  }
}

function outline(context, position, side, colour, width) {
  if (!position) return;
  context.strokeStyle = colour;
  context.lineWidth = width;
  context.strokeRect(position[1] * side + width / 2, position[0] * side + width / 2, side - width, side - width);
}

/** Thin grid lines, the hovered cell in white and the selected one in the accent, each haloed. */
export function paintGrid(context, [rows, cols], side, hovered, selected, accent) {
  context.strokeStyle = "rgba(255, 255, 255, 0.55)";
  context.lineWidth = 1;
  for (let r = 1; r < rows; r++) context.strokeRect(0, r * side, cols * side, 0);
  for (let c = 1; c < cols; c++) context.strokeRect(c * side, 0, 0, rows * side);
  outline(context, selected, side, "#ffffff", 5);
  outline(context, selected, side, accent, 3);
  outline(context, hovered, side, "rgba(0, 0, 0, 0.7)", 4);
  outline(context, hovered, side, "#ffffff", 2);
}
