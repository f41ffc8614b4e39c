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
        "store = atlas.collect_activations(session, work, 'blocks.3', work / 'acts', per_image=4, progress=False)\n"
        "coords = atlas.layout(store.activations)\n"
        "grid = atlas.bin_grid(coords, store.activations, size=8, min_count=3)\n"
        "len(store), grid.counts.sum()"
    ),
    code(
        "icons = atlas.atlas_icons(session, 'blocks.3', grid, whitening=atlas.whitening_matrix(store.activations),\n"
        "                          steps=48, cache=work / 'icons_8.npy', progress=False)\n"
        "Image.fromarray(atlas.render_atlas(icons))"
    ),
    md("Class filtering: cells faded by how much they push the zero-shot logit of *a red star*."),
    code(
        "classes = ['red star', 'blue circle', 'green square', 'yellow cross']\n"
        "prompts = [class_prompt(c) for c in classes]\n"
        "attributions = atlas.attribute_activations(session, store, prompts, progress=False)\n"
        "cells = atlas.cell_attribution(grid, attributions)\n"
        "Image.fromarray(atlas.render_atlas(icons, opacity=atlas.class_opacity(cells, classes.index('red star'))))"
    ),
    code("index = atlas.save_tile_pyramid({8: icons}, work / 'tiles', tile_cells=4)\nindex"),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, Path(__file__).resolve().parents[1] / "notebooks" / "activation_atlas.ipynb")
