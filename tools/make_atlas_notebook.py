"""Write notebooks/activation_atlas.ipynb (outputs are made when it runs, in the tests or by a person).

python tools/make_atlas_notebook.py
"""

from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md(
        "# An activation atlas of the embedded model\n\n"
        "Activation atlases (Carter et al., Distill 2019): collect many spatial activations of one layer, "
        "lay them out in 2-D with UMAP, bin the layout into a grid, and draw each cell as a feature inversion "
        "of its mean activation. Attribution then shows which cells push which class."
    ),
    code(
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "from PIL import Image\n\n"
        "from clip_widgets import ModelSession, atlas\n"
        "from clip_widgets.world import class_prompt, draw_scene\n\n"
        "session = ModelSession.default()\n"
        "work = Path(tempfile.mkdtemp())\n"
        "for i in range(160):\n"
        "    draw_scene(10**7 + i).image.save(work / f'scene_{i:03d}.png')"
    ),
    md("Four random patch tokens of block 3 per image, kept on disk (memory-mapped float16, resumable):"),
    code(
        "store = atlas.collect_activations(session, work, 'blocks.3', work / 'acts', per_image=4)\n"
        "coords = atlas.layout(store.activations)\n"
        "grid = atlas.bin_grid(coords, store.activations, size=8, min_count=3)\n"
        "len(store), grid.counts.sum()"
    ),
    code(
        "icons = atlas.atlas_icons(session, 'blocks.3', grid, whitening=atlas.whitening_matrix(store.activations),\n"
        "                          steps=48, cache=work / 'icons_8.npy')\n"
        "Image.fromarray(atlas.render_atlas(icons))"
    ),
    md("Class filtering: cells faded by how much they push the zero-shot logit of *a red star*."),
    code(
        "classes = ['red star', 'blue circle', 'green square', 'yellow cross']\n"
        "prompts = [class_prompt(c) for c in classes]\n"
        "attributions = atlas.attribute_activations(session, store, prompts)\n"
        "cells = atlas.cell_attribution(grid, attributions)\n"
        "Image.fromarray(atlas.render_atlas(icons, opacity=atlas.class_opacity(cells, classes.index('red star'))))"
    ),
    code("index = atlas.save_tile_pyramid({8: icons}, work / 'tiles', tile_cells=4)\nindex"),
    md(
        "## Explore it in the widget\n\n"
        "`build_atlas` runs the steps above at several grid sizes and caches each one, so opening the "
        "atlas again costs nothing. In the widget: the wheel, a drag, a double-click, `+` / `-` and the arrow "
        "keys zoom and pan, and zooming in shows the finer grids' icons; hovering a cell shows the classes it "
        "pushes, how many activations it holds and where they came from; a click selects it. Type a class in "
        "the filter box to fade the cells that do not push it."
    ),
    code(
        "import numpy as np\n\n"
        "from clip_widgets import AtlasWidget, build_atlas\n\n"
        "full = build_atlas(session, store, sizes=(4, 8, 16), min_count=2, classes=classes, prompts=prompts,\n"
        "                   icon_steps=48)\n"
        "widget = AtlasWidget(full, session=session, tile_cells=4)\n"
        "widget"
    ),
    md(
        "Filtering by a class from Python works the same way as typing it: `widget.class_filter = 'red star'` "
        "fades the cells that do not push it and keeps the rest of the map faintly visible."
    ),
    md("The view and the selection are traits: set them from Python, or read back what was picked."),
    code(
        "widget.zoom_to(0.5, 0.5, 2.0)\n"
        "row, col = (int(v) for v in np.argwhere(full.grid(8).filled)[0])  # the first filled cell\n"
        "widget.selected = [8, row, col]\n"
        "widget.selected_direction.shape, widget.selected_sources[:3]"
    ),
]
nb.metadata["clip_widgets"] = {"expects_widget": True}
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).resolve().parents[1] / "notebooks" / "activation_atlas.ipynb")
