"""Write notebooks/lab_dashboard.ipynb: the Lab alone, cheap to run, for Voila visitors.

python tools/make_dashboard_notebook.py
"""

from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md(
        "# The Lab dashboard\n\n"
        "The `Lab` on the embedded model, as one page: `voila notebooks/lab_dashboard.ipynb`. "
        "The CLIP Surgery and typographic tabs show within seconds; the Neurons tab (with dataset examples of "
        "drawn scenes) and the sparse probe of block 4 are computed after the page is on screen, and their tabs "
        "show how far along they are. `notebooks/multimodal_lab.ipynb` walks through the steps behind each view."
    ),
    code(
        "import numpy as np\n\n"
        "from clip_widgets import Lab, ModelSession\n"
        "from clip_widgets.probe import pooled_activations, sparse_probe\n"
        "from clip_widgets.world import CLASSES, COLOURS, SHAPES, class_prompt, draw_scene\n\n"
        "session = ModelSession.default()\n"
        "scene = draw_scene(12345, spec=[('red', 'star'), ('blue', 'circle')], word_probability=0.0)\n"
        "prompts = [class_prompt(c) for c in CLASSES]\n\n\n"
        "def shape_probe():\n"
        '    """Which units of block 4 compose each shape: a sparse probe over 200 drawn scenes."""\n'
        "    labels = [k % len(SHAPES) for k in range(200)]\n"
        "    colours = list(COLOURS)\n"
        "    images = [draw_scene(30000 + k, spec=[(colours[k % 6], SHAPES[labels[k]])], word_probability=0.0).image\n"
        "              for k in range(200)]\n"
        "    features = pooled_activations(session, images, 'blocks.4', progress=False)\n"
        "    return sparse_probe(features, labels, list(SHAPES), Cs=np.logspace(-2, 0, 4), progress=False)\n\n\n"
        "# background=True: the Lab is shown at once; the Neurons tab and the probe fill in when ready\n"
        "lab = Lab(session, scene.image, prompts[:6] + ['a red star', 'a blue circle'], probe=shape_probe,\n"
        "          probe_layer='blocks.4', steps=32, facets=2, background=True)\n"
        "lab"
    ),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["clip_widgets"] = {"expects_widget": True}
nbf.write(nb, Path(__file__).resolve().parents[1] / "notebooks" / "lab_dashboard.ipynb")
