// Bundles each widget's ESM module (and the CSS it imports) into clip_widgets/static/.
import * as esbuild from "esbuild";

const options = {
  entryPoints: { surgery: "src/surgery.js", heads: "src/heads.js", neuron: "src/neuron.js", atlas: "src/atlas.js", typographic: "src/typographic.js", probe: "src/probe.js", grid: "src/grid.js", page_loader: "src/page_loader.js", microscope: "src/microscope.js" },
  outdir: "../clip_widgets/static",
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: !process.argv.includes("--watch"),
  sourcemap: process.argv.includes("--watch") ? "inline" : false,
  logLevel: "info",
};

if (process.argv.includes("--watch")) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
