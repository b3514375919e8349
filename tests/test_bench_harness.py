"""`rnadiff bench` end to end on tiny dims: the table, JSON and plot exist and hold measured numbers."""
import json
import shutil

import pytest

from rnadiff.cli.main import main


def test_bench_small_writes_table_json_and_plot(tmp_path):
    out = tmp_path / "bench"
    rc = main(["bench", "--parts", "denoiser", "--small", "--lengths", "8", "16", "--samples", "2", "--repeats", "1",
               "--no-bf16",
               "--train-max", "8", "--uncached-max", "8", "--threads", "1", "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "bench.json").read_text())
    rows = data["rows"]
    assert [r["n_token"] for r in rows] == [8, 16]
    assert data["peaks"]["matmul_fp32_tflops"] > 0
    for r in rows:
        assert r["flops_per_step"] > 0 and r["step_fp32_s"] > 0
        assert 0 < r["sampler_peak_mem_gb"] <= r["peak_mem_gb"]
        assert 0 < r["transformer_peak_fraction_fp32"] < 2
        assert r["n_atom"] > 15 * r["n_token"]  # all-atom RNA (about 21 atoms per nucleotide)
    # FLOPs grow with length; the training row and uncached ratio only where asked for
    assert rows[1]["flops_per_step"] > rows[0]["flops_per_step"]
    assert rows[0]["train_step_s"] and rows[1]["train_step_s"] is None
    table = (out / "bench.md").read_text()
    assert table.count("\n| 8 |") == 1 and "| 16 |" in table
    assert (out / "bench.png").stat().st_size > 1000


@pytest.mark.skipif(not shutil.which("g++") and not shutil.which("c++"), reason="torch.compile needs a C++ compiler")
def test_bench_compile_column(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "--parts", "denoiser", "--small", "--lengths", "8", "--samples", "2", "--repeats", "1",
                 "--no-bf16",
                 "--train-max", "0", "--uncached-max", "0", "--threads", "1", "--compile", "--out", str(out)]) == 0
    (row,) = json.loads((out / "bench.json").read_text())["rows"]
    assert row["step_compiled_s"] > 0 and row["compile_s"] > 0
    assert row["compiled_max_coord_err"] < 1e-3
