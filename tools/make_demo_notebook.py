"""Write notebooks/surgery_demo.ipynb (outputs are made when it runs, in the tests or by a person).

python tools/make_demo_notebook.py
"""

from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md(
        "# CLIP Surgery in the notebook\n\n"
        "CLIP Surgery (Li et al., 2023) turns a CLIP model's image tokens into a heatmap per text label, "
        "without training: a value-value attention path in the last blocks keeps patch tokens local, and "
        "*feature surgery* removes what all labels share. The widget below shows one heatmap per label over "
        "the image; edit the labels, pick the method (CLIP Surgery, raw CLIP, MaskCLIP, SCLIP, ClearCLIP, NACLIP, "
        "GEM, Grad-ECLIP, LeGrad) and the one it is compared with, switch between the two or draw them side by "
        "side, move the threshold, and show the point prompts that would go to Segment Anything.\n\n"
        "The session is the embedded default model: a small open_clip ViT trained on the package's shapes "
        "world (coloured shapes with captions and masks) and CIFAR-10 photos. It ships inside the package, so "
        "this runs offline anywhere. For a hub model use `ModelSession.from_pretrained('ViT-B-16', 'openai')`, "
        "or a local checkpoint with `ModelSession.from_checkpoint(path, 'ViT-B-16')`."
    ),
    code(
        "from clip_widgets import ModelSession, SurgeryWidget\n"
        "from clip_widgets.world import CLASSES, draw_scene\n\n"
        "session = ModelSession.default()\n"
        "session, session.metrics"
    ),
    md("A scene from the world, drawn from a seed, with its caption and ground-truth masks:"),
    code(
        "scene = draw_scene(2026, objects=3, word_probability=0.0, size=64)\n"
        "print(scene.caption)\n"
        "scene.image.resize((256, 256))"
    ),
    code('widget = SurgeryWidget(session, scene.image.resize((256, 256)), scene.labels + ["green triangle"])\nwidget'),
    md(
        "Everything the widget shows is also plain Python. With all 30 classes as the label set, the "
        "Surgery map of each object should peak inside its mask:"
    ),
    code(
        "from clip_widgets import surgery_maps\n\n"
        "result = surgery_maps(session, scene.image, list(CLASSES))\n"
        "for obj in scene.objects:\n"
        '    for name, maps in (("Surgery", result.surgery), ("raw", result.raw)):\n'
        "        heat = maps[CLASSES.index(obj.label)]\n"
        "        inside = bool(obj.mask.flat[int(heat.argmax())])\n"
        '        print(f"{obj.label:>16} {name:>7}: peak inside the object: {inside}")'
    ),
    md("Point prompts for Segment Anything (`SamPredictor.predict(point_coords=points, point_labels=labels)`):"),
    code("points, labels = result.points(scene.labels[0], threshold=0.8)\npoints, labels"),
    md("Widget state is Python state: change it here and the view follows."),
    code(
        'widget.labels = widget.labels + ["red star"]\n'
        "widget.selected = len(widget.labels) - 1\n"
        "widget.show_points = True\n"
        'widget.error or "ok"'
    ),
    md("Two methods side by side, each with its own legend (the values its colours stand for):"),
    code('widget.compare = "naclip"\nwidget.side_by_side = True\nwidget.compare_result.info["scale"]'),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["clip_widgets"] = {"expects_widget": True}
nbf.write(nb, Path(__file__).resolve().parents[1] / "notebooks" / "surgery_demo.ipynb")
