"""Finding snapshots and colour / ground-truth pairs."""

from pathlib import Path

from depth_eval.inputs.discover import find_pairs, find_snapshots


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def test_pairs_match_stems_across_extensions_sorted(tmp_path):
    touch(tmp_path / "in", "b_colors.jpg", "a_colors.png", "c_colors.ppm", "notes.txt",
          "photo.png", ".hidden_colors.png")
    touch(tmp_path / "gt", "a_depth.png", "b_depth.png", "c_depth.npy", "zzz_depth.png")
    found = find_pairs(tmp_path / "in", tmp_path / "gt")
    assert [(p.stem, p.color_path.name, p.depth_path.name) for p in found.pairs] == [
        ("a_colors", "a_colors.png", "a_depth.png"),
        ("b_colors", "b_colors.jpg", "b_depth.png"),
        ("c_colors", "c_colors.ppm", "c_depth.npy")]
    assert found.without_ground_truth == []
    assert found.not_inputs == ["notes.txt", "photo.png"]


def test_unpaired_inputs_and_duplicate_stems_are_reported(tmp_path):
    touch(tmp_path / "in", "a_colors.png", "a_colors.jpg", "lonely_colors.png")
    touch(tmp_path / "gt", "a_depth.png", "a_depth.tif")
    found = find_pairs(tmp_path / "in", tmp_path / "gt")
    assert [p.color_path.name for p in found.pairs] == ["a_colors.jpg"]
    assert found.pairs[0].depth_path.name == "a_depth.png"
    assert found.without_ground_truth == ["lonely_colors.png"]
    assert sorted(found.duplicates) == ["a_colors.png", "a_depth.tif"]


def test_snapshots_sorted_with_own_or_shared_definition(tmp_path):
    touch(tmp_path, "b_iter_2.caffemodel", "a_iter_1.caffemodel", "a_iter_1.prototxt",
          "shared.prototxt", "readme.md")
    snapshots = find_snapshots(tmp_path)
    assert [(s.name, s.prototxt and s.prototxt.name) for s in snapshots] == [
        ("a_iter_1", "a_iter_1.prototxt"), ("b_iter_2", None)]
    shared = find_snapshots(tmp_path, tmp_path / "shared.prototxt")
    assert [s.prototxt.name for s in shared] == ["a_iter_1.prototxt", "shared.prototxt"]
