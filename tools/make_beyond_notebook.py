"""Write notebooks/beyond_surgery.ipynb (outputs are made when it runs, in the tests or by a person).

python tools/make_beyond_notebook.py
"""

from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md(
        "# Beyond Surgery and beyond single neurons\n\n"
        "The training-free dense maps that followed CLIP Surgery, through one verb; point prompts turned into "
        "masks; a ViT's attention heads explained in words; and activation grids, what a layer sees at each "
        "place of one image. Everything runs offline on the embedded models and the package's shapes world, "
        "where the truth is known."
    ),
    code(
        "import numpy as np\n"
        "from PIL import Image\n\n"
        "from clip_widgets import ModelSession, dense_maps\n"
        "from clip_widgets.dense import method_names, tower_of\n"
        "from clip_widgets.featvis import grid\n"
        "from clip_widgets.world import CLASSES, class_prompt, draw_scene\n\n"
        "vit = ModelSession.load('world-vit')\n"
        "scene = draw_scene(3, spec=[('red', 'star'), ('blue', 'circle')], word_probability=0.0, size=128)\n"
        "labels = [class_prompt(c) for c in ('red star', 'blue circle', 'green square')]\n"
        "scene.image.resize((192, 192))"
    ),
    md(
        "Each method's map of *a red star* over the scene, on one scale shared by the three labels (red: "
        "high), with `centre=True`: each patch's mean over the labels is taken out first. On a model this "
        "small, what every label shares (the background is about as close to every class prompt) outweighs "
        "what tells them apart; feature surgery removes it its own way. Try `centre=False` to see it. "
        "`method_names` lists the methods that apply to a tower; ResNets have five of the nine."
    ),
    code(
        "def overlay(image, heat):\n"
        "    gray = np.asarray(image.convert('L'), dtype=np.float32)[..., None] * 0.5\n"
        "    colour = np.stack([heat * 255, heat * 40, (1 - heat) * 90], axis=-1)\n"
        "    return np.clip(gray + colour * 0.6, 0, 255).astype(np.uint8)\n\n"
        "methods = method_names(tower_of(vit.model))\n"
        "maps = {m: dense_maps(vit, scene.image, labels, method=m, centre=True) for m in methods}\n"
        "print('  '.join(methods))\n"
        "grid(np.stack([overlay(scene.image, maps[m].maps[0]) for m in methods]), columns=len(methods))"
    ),
    md(
        "From the map to a mask: point prompts where the label's map is hot (none when the label is absent), "
        "then a segmenter. Offline it is a random walker; with `segment_anything` installed and a checkpoint "
        "(`SamSegmenter(path)`), Segment Anything. A mask is only as good as its points: here the blue "
        "circle's mask is the circle and the absent green square's is empty, but this model's Surgery map of "
        "the red star is hottest on the patches around the star, so its points fall on the background and "
        "the walker returns the background. `bench/eval_masks.py` scores every method over many scenes."
    ),
    code(
        "from clip_widgets.segment import label_mask\n\n"
        "masks = [label_mask(vit, scene.image, label, labels, segmenter='random_walker')[0] for label in labels]\n"
        "print([f'{label}: {mask.mean():.2f} of the image' for label, mask in zip(labels, masks)])\n"
        "grid(np.stack([np.repeat(mask[..., None] * 255, 3, -1).astype(np.uint8) for mask in masks]), columns=3)"
    ),
    md(
        "## Attention heads in words\n\n"
        "The ViT's image embedding is an exact sum of what each layer, head and image token writes into it. "
        "TextSpan names the texts that span each head's outputs over a set of images; mean-ablation says how "
        "much zero-shot accuracy each head carries. Click a head; its map shows where in the image it writes "
        "the chosen text (red towards, blue away)."
    ),
    code(
        "from clip_widgets import HeadExplorer\n\n"
        "scenes = [draw_scene(k, spec=[CLASSES[k % 30].split()], word_probability=0.0).image for k in range(60)]\n"
        "heads = HeadExplorer(vit, scenes, classes=[class_prompt(c) for c in CLASSES],\n"
        "                     labels=[k % 30 for k in range(60)])\n"
        "heads.select(4, 2)\n"
        "heads"
    ),
    md(
        "## Activation grids\n\n"
        "For one image and one layer: every position's activation vector made visible (all positions in one "
        "batched render), its strongest units with their own pictures, and how much it moves each class. "
        "`world-rn-robust`'s features are legible: its star cells draw star-like red forms. The grid renders "
        "in the background with a progress bar; hover a cell for its card."
    ),
    code(
        "from clip_widgets import ActivationGridWidget\n\n"
        "robust = ModelSession.load('world-rn-robust')\n"
        "cells = ActivationGridWidget(robust, scene.image, 'layer4', classes=labels[:2], icon_steps=48)\n"
        "cells"
    ),
    code("cells.wait()  # run top to bottom, wait for the icons; interactively it fills in by itself\ncells.progress"),
]
nb.metadata["clip_widgets"] = {"expects_widget": True}
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
path = Path(__file__).resolve().parents[1] / "notebooks" / "beyond_surgery.ipynb"
nbf.write(nb, path)
print(f"wrote {path}")
