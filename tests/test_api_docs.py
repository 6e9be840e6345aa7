"""docs/api.md runs: every ```python block of it, in order, in one namespace (each builds on the ones
before), on the tiny model in place of the bundled one, in a folder of its own (the config it names is
the repository's)."""
import re

from conftest import ROOT

API_DOC = ROOT / "docs" / "api.md"
BUNDLED = '"weights/imhead.npz"'
FINE_TUNE_CONFIG = '"configs/finetune.json"'


def test_every_example_in_the_api_docs_runs(tiny_model, tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"^```python\n(.*?)^```", API_DOC.read_text(), re.S | re.M)
    assert len(blocks) >= 6 and BUNDLED in blocks[0]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for number, block in enumerate(blocks, 1):
        block = block.replace(BUNDLED, repr(str(tiny_model)))
        block = block.replace(FINE_TUNE_CONFIG, repr(str(ROOT / "configs" / "finetune.json")))
        code = compile(block, f"docs/api.md, example {number}", "exec")
        exec(code, namespace)
    # What the examples say they write.
    assert {p.name for p in tmp_path.iterdir()} >= {"head.ply", "head.json", "edited.obj", "smile.glb",
                                                    "expressions.glb", "fit.obj", "fit.json", "scans.npz", "mine.npz"}
    assert "vertices, closed: True" in capsys.readouterr().out
