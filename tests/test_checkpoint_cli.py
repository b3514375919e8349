"""`rnadiff convert-protenix`: happy path and user errors (exit code 2, one line, no traceback)."""
from __future__ import annotations

import pytest
import torch

from rnadiff.checkpoints import load_checkpoint, read_checkpoint_document
from rnadiff.cli.main import main
from tests.test_checkpoint_protenix import protenix_checkpoint, write_malicious



@pytest.fixture
def protenix_file(golden, tmp_path):
    path = tmp_path / "protenix.pt"
    torch.save(protenix_checkpoint(golden["state_dict"], "module.diffusion_module."), path)
    return path


def assert_user_error(capsys, code: int, *fragments: str) -> str:
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rnadiff: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err
    return err


@pytest.mark.parametrize("out_name", ["converted", "converted.safetensors"])
def test_convert_protenix(golden, protenix_file, tmp_path, capsys, out_name):
    out = tmp_path / out_name
    assert main(["convert-protenix", str(protenix_file), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    module = load_checkpoint(out)
    for key, value in golden["state_dict"].items():
        assert torch.equal(module.state_dict()[key], value), key
    provenance = read_checkpoint_document(out)["provenance"]
    assert provenance["source_format"] == "protenix" and provenance["source_file"] == "protenix.pt"
    assert len(provenance["source_sha256"]) == 64


def test_convert_protenix_window_options(protenix_file, tmp_path):
    out = tmp_path / "c.safetensors"
    assert main(["convert-protenix", str(protenix_file), "--out", str(out), "--n-queries", "16", "--n-keys", "64"]) == 0
    assert read_checkpoint_document(out)["model"]["atom_encoder"]["n_queries"] == 16


def test_refuses_to_overwrite(protenix_file, tmp_path, capsys):
    out = tmp_path / "c.safetensors"
    out.write_bytes(b"keep me")
    assert_user_error(capsys, main(["convert-protenix", str(protenix_file), "--out", str(out)]), "already exists")
    assert out.read_bytes() == b"keep me"
    assert main(["convert-protenix", str(protenix_file), "--out", str(out), "--overwrite"]) == 0
    assert load_checkpoint(out) is not None


@pytest.mark.parametrize("kind", ["zip_system", "raw_pickle"])
def test_malicious_input(tmp_path, capsys, kind):
    path, marker = write_malicious(tmp_path, kind)
    code = main(["convert-protenix", str(path), "--out", str(tmp_path / "out")])
    assert_user_error(capsys, code, "refused", path.name)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_bad_inputs(tmp_path, capsys):
    assert_user_error(capsys, main(["convert-protenix", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "o")]), "no such")
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    assert_user_error(capsys, main(["convert-protenix", str(text), "--out", str(tmp_path / "o")]), "not a checkpoint")
    cut = tmp_path / "cut.pt"
    torch.save({"model": {"w": torch.ones(1000)}}, cut)
    cut.write_bytes(cut.read_bytes()[:600])
    assert_user_error(capsys, main(["convert-protenix", str(cut), "--out", str(tmp_path / "o")]),
                      "not a readable torch checkpoint")
    torch.save({"model": {"trunk.weight": torch.ones(2)}}, tmp_path / "trunk.pt")
    assert_user_error(capsys, main(["convert-protenix", str(tmp_path / "trunk.pt"), "--out", str(tmp_path / "o")]),
                      "no DiffusionModule weights")
    assert not (tmp_path / "o").exists()
