"""examples/bn_lenet.ipynb, executed by a real Jupyter kernel (nbclient + ipykernel).

In a kernel, ``utils.train_ch5`` draws one loss-and-accuracy figure and updates it in
place after every epoch: the kernel sends one ``display_data`` and then
``update_display_data`` messages with the same display id. Outside a kernel (every
other test) nothing is drawn and the text lines are all there is.
"""
import base64
import os
import shutil

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "examples", "bn_lenet.ipynb")
PNG = b"\x89PNG\r\n\x1a\n"


class RecordingClient(NotebookClient):
    """A NotebookClient that keeps every message the kernel sends about outputs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages = []

    def process_message(self, msg, cell, cell_index):
        self.messages.append(msg)
        return super().process_message(msg, cell, cell_index)


def _execute(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MXNET_CPU_WORKER_NTHREADS", "1")
    path = str(tmp_path / "bn_lenet.ipynb")
    shutil.copy(NOTEBOOK, path)
    nb = nbformat.read(path, as_version=4)
    client = RecordingClient(nb, timeout=120, kernel_name="python3",
                             resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return nb, client.messages


def _outputs(cell, kind):
    return [out for out in cell.outputs if out.output_type == kind]


def test_notebook_draws_live_curves_and_a_grad_cam(tmp_path, monkeypatch):
    nb, messages = _execute(tmp_path, monkeypatch)
    train_cell = next(c for c in nb.cells if c.cell_type == "code" and "train_ch5" in c.source)
    epochs = 5

    # The live figure: one display_data with a display id, updated after each later epoch.
    shown = [m for m in messages if m["msg_type"] == "display_data"
             and "gluon_cnns" in m["content"].get("metadata", {})]
    assert len(shown) == 1
    display_id = shown[0]["content"]["transient"]["display_id"]
    updates = [m for m in messages if m["msg_type"] == "update_display_data"
               and m["content"]["transient"]["display_id"] == display_id]
    assert [u["content"]["metadata"]["gluon_cnns"]["epochs_drawn"] for u in updates] == \
        list(range(2, epochs + 1))
    figures = _outputs(train_cell, "display_data")
    assert len(figures) == 1  # updated in place, not one figure per epoch
    assert figures[0].metadata["gluon_cnns"]["epochs_drawn"] == epochs
    final_png = base64.b64decode(figures[0].data["image/png"])
    assert final_png.startswith(PNG)
    assert final_png != base64.b64decode(shown[0]["content"]["data"]["image/png"])

    # The text lines are printed too, and the final accuracy.
    text = "".join(out.text for out in _outputs(train_cell, "stream"))
    assert text.count("epoch ") >= epochs and "epoch %d, loss" % epochs in text
    final = [line for line in text.splitlines() if line.startswith("final test acc ")]
    assert len(final) == 1 and 0.5 < float(final[0].split()[-1]) <= 1.0

    # The Grad-CAM grid: an image output of the last cell, and the file it shows.
    cam_cell = nb.cells[-1]
    images = [out for out in _outputs(cam_cell, "display_data") if "image/png" in out.data]
    assert len(images) == 1
    assert base64.b64decode(images[0].data["image/png"]).startswith(PNG)
    assert (tmp_path / "bn_lenet_gradcam.png").stat().st_size > 10000
    assert not any(out.output_type == "error" for c in nb.cells if c.cell_type == "code"
                   for out in c.outputs)
