"""Write notebooks/neuron_explorer.ipynb (outputs are made when it runs, in the tests or by a person).

python tools/make_neuron_notebook.py
"""

from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md(
        "# A Microscope for your own model and images\n\n"
        "Feature visualization (gradient ascent on the input, with a decorrelated Fourier parameterization "
        "and random transforms for robustness), dataset examples (the images that excite a unit most) and the "
        "words a unit responds to, for any open_clip model. Here: the embedded default model, a small ViT "
        "trained on the package's shapes world, so everything runs offline."
    ),
    code(
        "from clip_widgets import ModelSession\n"
        "from clip_widgets.featvis import grid, render\n"
        "from clip_widgets.featvis import objectives as obj\n\n"
        "session = ModelSession.default()\n"
        "session.layers"
    ),
    md(
        "Eight units of block 4, one image each, optimized together in one batch (image *i* maximizes unit "
        "*i*). Objectives compose: add `diversity` to get different facets of one unit, or a text objective."
    ),
    code(
        "units = render(session, obj.channel('blocks.4', range(8)), batch=8, steps=96)\n"
        "grid(units.images, columns=8, scale=2)"
    ),
    code(
        "prompt = obj.text_objective(session, 'a red star')\n"
        "facets = render(session, prompt + 0.05 * obj.diversity('blocks.2'), batch=4, steps=96)\n"
        "print('cosine with the prompt:', facets.scores.round(3))\n"
        "grid(facets.images, scale=2)"
    ),
    md(
        "These pictures are only as legible as the model's features. `world-vit` was trained without "
        "adversarial examples, so what it responds to includes pixel patterns. `world-rn-robust` was "
        "trained on scenes perturbed to fool it; the same call on it draws the shapes and colours of the "
        "prompt, and `world-rn`, another network, reads them."
    ),
    code(
        "from clip_widgets.generate import class_image\n\n"
        "robust = ModelSession.load('world-rn-robust')\n"
        "made = class_image(robust, ['a red circle', 'a green star', 'a blue triangle', 'a yellow square'])\n"
        "grid(made.images, scale=2)"
    ),
    md(
        "Dataset examples: stream images through the model once and keep, for every unit, the top and bottom "
        "images with where the unit peaked. The store is on disk; an interrupted run resumes."
    ),
    code(
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "from clip_widgets import collect_examples\n"
        "from clip_widgets.world import draw_scene\n\n"
        "folder = Path(tempfile.mkdtemp())\n"
        "for i in range(200):\n"
        "    draw_scene(10**7 + i, size=96).image.save(folder / f'scene_{i:03d}.png')\n"
        "store = collect_examples(session, folder, ['blocks.4', 'ln_post'], folder / 'examples', k=8)\n"
        "[(e.source.split('/')[-1], round(e.value, 2), e.position) for e in store.examples('blocks.4', 0)[:3]]"
    ),
    md(
        "Text side: which words does a unit of the last layer point to in the joint embedding space, and "
        "which written words excite it?"
    ),
    code(
        "from clip_widgets.textprobe import rank_words_by_embedding, rank_words_by_image\n"
        "from clip_widgets.world import COLOURS, SHAPES\n\n"
        "vocabulary = [*COLOURS, *SHAPES, 'cat', 'dog', 'ship', 'truck', 'apple', 'ipod']\n"
        "(by_text,) = rank_words_by_embedding(session, 'ln_post', 0, vocabulary)\n"
        "(by_image,) = rank_words_by_image(session, 'ln_post', 0, vocabulary)\n"
        "by_text.top(5), by_image.top(5)"
    ),
    md(
        "The explorer: pick a layer and unit (arrow keys when focused), or type a text query to jump to the "
        "units it excites most. The visualization streams in while it optimizes."
    ),
    code(
        "from clip_widgets import NeuronExplorer\n\n"
        "explorer = NeuronExplorer(session, 'blocks.4', 0, examples=store, steps=64)\n"
        "explorer"
    ),
    code("explorer.query = 'a blue circle'\nexplorer.query_results[:5]"),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["clip_widgets"] = {"expects_widget": True}
nbf.write(nb, Path(__file__).resolve().parents[1] / "notebooks" / "neuron_explorer.ipynb")
