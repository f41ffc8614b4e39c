"""Write notebooks/multimodal_lab.ipynb (outputs are made when it runs, in the tests or by a person).

python tools/make_lab_notebook.py
"""

from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md(
        "# The multimodal-neuron lab\n\n"
        "Saliency maps, class images, DeepDream, typographic attacks and sparse probes on the embedded "
        "model, then all the widgets together in one `Lab`.\n\n"
        "**For a dashboard, serve `notebooks/lab_dashboard.ipynb` with Voila** "
        "(`voila notebooks/lab_dashboard.ipynb`): it shows the `Lab` within seconds and computes the heavy parts "
        "after it is on screen, where Voila would show this notebook only once every cell below has run."
    ),
    code(
        "import numpy as np\n\n"
        "from clip_widgets import Lab, ModelSession\n"
        "from clip_widgets.featvis import grid\n"
        "from clip_widgets.world import CLASSES, class_prompt, draw_scene\n\n"
        "session = ModelSession.default()\n"
        "scene = draw_scene(12345, spec=[('red', 'star'), ('blue', 'circle')], word_probability=0.0)\n"
        "prompts = [class_prompt(c) for c in CLASSES]\n"
        "scene.caption"
    ),
    md("## Saliency\n\nWhich pixels move the zero-shot logit of *a red star* (among all 30 classes)?"),
    code(
        "from clip_widgets.saliency import attribute\n\n"
        "maps = [attribute(session, scene.image, 'a red star', classes=prompts, method=m).maps[0]\n"
        "        for m in ('gradient', 'grad_x_input', 'integrated_gradients')]\n"
        "gray = [(255 * np.abs(m) / np.abs(m).max()).astype(np.uint8) for m in maps]\n"
        "pictures = [np.asarray(scene.image)] + [np.repeat(g[..., None], 3, -1) for g in gray]\n"
        "grid(np.stack(pictures), scale=3)"
    ),
    md("## Class images and DeepDream"),
    code(
        "from clip_widgets.generate import class_image, deepdream\n\n"
        "made = class_image(session, ['a red star', 'a blue circle'], steps=48)\n"
        "dream = deepdream(session, scene.image, 'blocks.3', octaves=2, steps=16)\n"
        "grid(np.concatenate([made.images, dream[None]]), scale=3)"
    ),
    md(
        "## Typographic attack\n\n"
        "Write the word *star* into scenes of red circles: how often does the prediction move to a red star? "
        "`world-rn` was trained on a world where writing names things (see the README), `world-vit` was not. "
        "A made-up word of the same length is the control: a model that reads moves for *star*, not for *plin*."
    ),
    code(
        "from clip_widgets.typographic import attack\n\n"
        "reader = ModelSession.load('world-rn')\n"
        "circles = [draw_scene(20000 + i, spec=[('red', 'circle')], word_probability=0.0).image for i in range(24)]\n"
        "for model in (session, reader):\n"
        "    for word in ('star', 'plin'):\n"
        "        report = attack(model, circles, word, prompts, target='a red star', position=(0.5, 0.85), size=0.25)\n"
        "        moved = report.success_rate\n"
        "        print(f'{model.name}, {word!r}: flipped {report.flip_rate:.0%}, to \"a red star\" {moved:.0%}')"
    ),
    md("## Sparse probe\n\nWhich units of block 4 compose each shape?"),
    code(
        "from clip_widgets.probe import pooled_activations, sparse_probe\n"
        "from clip_widgets.world import COLOURS, SHAPES\n\n"
        "labels = [k % len(SHAPES) for k in range(200)]\n"
        "colours = list(COLOURS)\n"
        "images = [draw_scene(30000 + k, spec=[(colours[k % 6], SHAPES[labels[k]])], word_probability=0.0).image\n"
        "          for k in range(200)]\n"
        "features = pooled_activations(session, images, 'blocks.4')\n"
        "path = sparse_probe(features, labels, list(SHAPES), Cs=np.logspace(-2, 0, 4))\n"
        "list(zip(path.neurons.tolist(), path.accuracy.round(2).tolist()))"
    ),
    md("## Everything together"),
    code(
        "lab = Lab(session, scene.image, prompts[:6] + ['a red star', 'a blue circle'], probe=path, "
        "probe_layer='blocks.4', steps=32, facets=2)\n"
        "lab"
    ),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["clip_widgets"] = {"expects_widget": True}
nbf.write(nb, Path(__file__).resolve().parents[1] / "notebooks" / "multimodal_lab.ipynb")
