"""Dataset readers: the same photos in an FFHQ folder tree, a zip, tar shards and parquet files
get the same ids and bytes; FFHQ's metadata landmarks; --only; clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from flamefit.scale.datasets import DatasetPhoto, is_dataset_input, open_dataset
from flamefit.scale.ffhq import metadata_landmarks
from flamefit.scale.reading import read_photos, sha256_bytes
from flamefit.utils import UsageError
from tests.scale.conftest import (
    images_in, write_ffhq, write_parquet, write_tar_shards, write_zip, render_faces,
)


@pytest.fixture(scope="module")
def ffhq(tmp_path_factory, demo_head_dir):
    """Five renders in FFHQ's layout (two FFHQ folders) with the metadata file."""
    root = tmp_path_factory.mktemp("ffhq")
    faces = render_faces(demo_head_dir, 5, size=96)
    images = write_ffhq(root, faces)
    return root, images, faces


def by_id(dataset) -> dict[str, bytes]:
    photos = dataset.photos
    return {photo.id: data for photo, data in zip(photos, read_photos(photos))}


def test_ids_and_bytes_are_the_same_in_every_container(ffhq, tmp_path):
    pytest.importorskip("pyarrow", reason="parquet needs pyarrow (flamefit[ray])")
    root, images, _ = ffhq
    files = images_in(images)
    expected = {name[:-4]: data for name, data in files.items()}  # 00000/00000 ...
    assert sorted(expected) == ["00000/00000", "00000/00500", "01000/01000", "01000/01500", "02000/02000"]
    containers = {
        "folder": [images],
        "zip": [write_zip(tmp_path / "ffhq.zip", files)],
        "tar shards": write_tar_shards(tmp_path / "shards", files),
        "parquet (Hugging Face image struct)": [write_parquet(tmp_path / "hf.parquet", files)],
        "parquet (webdataset key + jpg)": [write_parquet(tmp_path / "wds.parquet", files, hugging_face=False)],
    }
    for kind, inputs in containers.items():
        dataset = open_dataset(inputs)
        assert by_id(dataset) == expected, kind
    # a folder of shards and a glob of them are the shards
    assert by_id(open_dataset([tmp_path / "shards"])) == expected
    assert by_id(open_dataset([str(tmp_path / "shards" / "*.tar")])) == expected
    # reports name archive members as ARCHIVE/member
    zipped = open_dataset([tmp_path / "ffhq.zip"]).photos[0]
    assert zipped.source == str((tmp_path / "ffhq.zip").absolute() / "00000" / "00000.png")
    # the bytes hash as the unpacked file does (a fit made from the folder resumes from the zip)
    from flamefit.fitting.results import file_sha256

    assert sha256_bytes(expected["00000/00000"]) == file_sha256(images / "00000" / "00000.png")


def test_containers_are_told_apart_from_plain_inputs(ffhq, tmp_path):
    _, images, _ = ffhq
    zipped = write_zip(tmp_path / "a.zip", images_in(images))
    assert is_dataset_input(zipped) and is_dataset_input(str(tmp_path / "*.zip"))
    assert not is_dataset_input(images) and not is_dataset_input(images / "00000" / "00000.png")
    only_archives = tmp_path / "archives"
    only_archives.mkdir()
    write_zip(only_archives / "b.zip", images_in(images))
    assert is_dataset_input(only_archives)


def test_ffhq_metadata_landmarks_match_photos_in_every_layout(ffhq, tmp_path):
    root, images, faces = ffhq
    for given in (root, images, images / "00000"):  # the metadata is found up to two folders above
        dataset = open_dataset([given])
        assert dataset.metadata == [str((root / "ffhq-dataset-v2.json").absolute())]
        assert dataset.n_with_landmarks == len(dataset.photos)
    dataset = open_dataset([root])
    assert dataset.photos[0].id == "images1024x1024/00000/00000"  # the path relative to the folder given
    np.testing.assert_allclose(metadata_landmarks(dataset.photos[0], (96, 96)), faces[0][1])
    # a zip next to the metadata gets it too; a thumbnail-sized photo gets the landmarks scaled
    zipped = open_dataset([write_zip(root / "copy.zip", images_in(images))])
    assert zipped.n_with_landmarks == 5
    scaled = metadata_landmarks(zipped.photos[0], (48, 48))
    np.testing.assert_allclose(scaled, (faces[0][1] + 0.5) / 2 - 0.5)
    (root / "copy.zip").unlink()


def test_only_keeps_the_listed_ids_in_their_order(ffhq, tmp_path):
    _, images, _ = ffhq
    listing = tmp_path / "selected.txt"
    listing.write_text("# chosen\n01000/01500\n00000/00000\n\n")
    assert [p.id for p in open_dataset([images], only=listing).photos] == ["01000/01500", "00000/00000"]
    listing.write_text("00000/00000\n99999/99999\n")
    with pytest.raises(UsageError, match="1 of its 2 ids are not in the inputs"):
        open_dataset([images], only=listing)


def test_bad_containers_and_members_say_what_is_wrong(ffhq, tmp_path):
    _, images, _ = ffhq
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UsageError, match="broken.zip: cannot read this zip file"):
        open_dataset([broken])
    empty = write_zip(tmp_path / "empty.zip", {"readme.txt": b"no photos"})
    with pytest.raises(UsageError, match="holds no images"):
        open_dataset([empty])
    pa = pytest.importorskip("pyarrow", reason="parquet needs pyarrow (flamefit[ray])")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"caption": ["a face"]}), tmp_path / "text.parquet")
    with pytest.raises(UsageError, match="no image column.*caption"):
        open_dataset([tmp_path / "text.parquet"])
    # a member that vanished (the shard was rewritten): that photo alone fails, with its name
    shard = write_tar_shards(tmp_path / "shards", images_in(images), per_shard=5)[0]
    photos = open_dataset([shard]).photos
    shard.write_bytes(shard.read_bytes()[:2048])
    outcome = read_photos(photos)
    assert isinstance(outcome[-1], OSError) and "shard-000000.tar/02000/02000.png" in str(outcome[-1])


def test_photo_records_travel_as_json():
    photo = DatasetPhoto(id="00000/00001", source="/d/ffhq.zip/00000/00001.png", kind="zip",
                         container="/d/ffhq.zip", member="00000/00001.png", landmarks=[[1.0, 2.0]] * 68,
                         landmarks_size=[1024, 1024])
    assert DatasetPhoto.from_json(photo.to_json()) == photo and photo.suffix == ".png"
