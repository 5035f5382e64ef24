"""The results store (hw4lib.results): a document with its manifest, written whole, read back."""

from __future__ import annotations

from hw4lib.results import list_results, read_result, write_result


def test_results_store_roundtrip(tmp_path):
    p = write_result(
        "nerf/x",
        {"psnr": 31.5},
        profile="smoke",
        data_source="generated",
        device="cpu",
        seconds=1.234,
        root=tmp_path,
    )
    assert p == tmp_path / "smoke" / "nerf" / "x.json"
    doc = read_result("nerf/x", "smoke", root=tmp_path)
    assert doc["data"] == {"psnr": 31.5}
    m = doc["manifest"]
    assert set(m) >= {"profile", "data_source", "git_commit", "device", "seconds", "date"}
    assert m["seconds"] == 1.23 and m["profile"] == "smoke"
    assert list_results("smoke", "nerf/", root=tmp_path) == ["nerf/x"]
    assert read_result("nerf/missing", "smoke", root=tmp_path) is None
    assert not list(tmp_path.rglob("*.tmp"))
