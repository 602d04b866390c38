"""FeatureCache: exact features, no encoder call on hits, several processes writing one cache."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle

import pytest
import torch
from feature_parts import CountingEncoder, PatchEncoder, TinyClip, fill_cache, write_images

from ablate.data.collate import EvalCollator, VLMCollator
from ablate.errors import AblateError, DataError
from ablate.features.cache import FeatureCache


def fresh_features(encoder, paths):
    """What the uncached path computes: the collator's pixel_values through the encoder."""
    pixels = VLMCollator(image_processor=encoder.image_processor, pad_token_id=0).images([{"image": p} for p in paths])
    with torch.no_grad():
        return encoder(pixels["pixel_values"])


def test_cached_features_equal_encoder_output_exactly(tmp_path, images):
    encoder = CountingEncoder(TinyClip())
    cache = FeatureCache(tmp_path, encoder, batch_size=len(images))
    first = cache.get_many(images)
    assert first.dtype == torch.float32 and first.shape == (6, 16, 16)
    assert torch.equal(first, fresh_features(encoder.inner, images))
    # Another instance (another process, a later run) reads the same bits from disk.
    again = FeatureCache(tmp_path, encoder).get_many(images[::-1])
    assert torch.equal(again, first.flip(0))
    assert cache.directory == tmp_path / "test-tiny-clip-0" / "float32-square"


def test_second_pass_is_all_hits_without_encoder_calls(tmp_path, images):
    encoder = CountingEncoder(TinyClip())
    cache = FeatureCache(tmp_path, encoder, batch_size=4)
    first = torch.cat([cache.get_many(images[:3]), cache.get_many(images[3:])])
    assert cache.counts() == {"hits": 0, "misses": 6}
    calls = encoder.calls
    second = torch.stack([cache.lookup(f"s{i}", p) for i, p in enumerate(images)])
    assert encoder.calls == calls  # no encoder call at all
    assert cache.counts() == {"hits": 6, "misses": 6}
    assert torch.equal(second, first)


def test_misses_are_encoded_in_batches_and_duplicates_once(tmp_path, images):
    encoder = CountingEncoder(TinyClip())
    cache = FeatureCache(tmp_path, encoder, batch_size=4)
    out = cache.get_many(images + images[:2])
    assert (encoder.calls, encoder.images) == (2, 6)  # 6 distinct images in batches of 4 + 2
    assert cache.counts() == {"hits": 2, "misses": 6}
    assert torch.equal(out[6:], out[:2])


def test_float16_storage(tmp_path, images):
    encoder = TinyClip()
    cache = FeatureCache(tmp_path, encoder, dtype="float16", batch_size=len(images))
    out = cache.get_many(images)
    assert out.dtype == torch.float16
    assert torch.equal(out, fresh_features(encoder, images).half())
    assert torch.equal(FeatureCache(tmp_path, encoder, dtype=torch.float16).get_many(images), out)
    assert cache.directory.name == "float16-square"


def test_changed_image_file_is_encoded_again(tmp_path, images):
    encoder = CountingEncoder(PatchEncoder())
    cache = FeatureCache(tmp_path, encoder)
    before = cache.get_many(images[:1])
    write_images(tmp_path / "images", 1, seed=99)  # rewrites img0000.png with other pixels
    os.utime(images[0], ns=(1, 1))  # a different mtime even on coarse-clock file systems
    after = cache.get_many(images[:1])
    assert cache.counts() == {"hits": 0, "misses": 2}
    assert not torch.equal(before, after)
    assert torch.equal(after, fresh_features(encoder, images[:1]))


def test_in_memory_images_are_encoded_not_stored(tmp_path, images):
    from PIL import Image

    encoder = CountingEncoder(PatchEncoder())
    cache = FeatureCache(tmp_path, encoder)
    with Image.open(images[0]) as opened:
        pil = opened.convert("RGB")  # a converted image has no filename
    out = cache.get_many([pil, pil])
    assert cache.counts() == {"hits": 0, "misses": 2} and len(cache) == 0
    assert torch.equal(out[0], fresh_features(encoder, images[:1])[0])


def test_collator_batch_lookup_feeds_image_features(tmp_path, images):
    encoder = CountingEncoder(PatchEncoder())
    cache = FeatureCache(tmp_path, encoder)
    rows = [{"id": "a", "input_ids": [1, 2], "labels": [1, 2], "image": images[0]},
            {"id": "b", "input_ids": [3], "labels": [3], "image": None},
            {"id": "c", "input_ids": [4, 5, 6], "labels": [4, 5, 6], "image": images[1]}]
    batch = VLMCollator(pad_token_id=0, batch_feature_lookup=cache.batch_lookup)(rows)
    assert "pixel_values" not in batch and encoder.calls == 1
    assert torch.equal(batch["image_features"], fresh_features(encoder.inner, images[:2]))
    prompts = [{k: v for k, v in r.items() if k != "labels"} for r in rows]
    eval_batch = EvalCollator(pad_token_id=0, batch_feature_lookup=cache.batch_lookup)(prompts)
    assert torch.equal(eval_batch["image_features"], batch["image_features"]) and encoder.calls == 1


def test_dataloader_workers_share_counts_and_read_the_cache(tmp_path):
    paths = write_images(tmp_path / "images", 8)
    cache = FeatureCache(tmp_path / "cache", PatchEncoder(), batch_size=8)
    assert cache.prefill(paths + paths[:3]) == 8 and cache.prefill(paths) == 0
    collator = VLMCollator(pad_token_id=0, batch_feature_lookup=cache.batch_lookup)
    rows = [{"id": str(i), "input_ids": [1], "image": p} for i, p in enumerate(paths)]
    loader = torch.utils.data.DataLoader(rows, batch_size=2, num_workers=2, collate_fn=collator)
    feats = torch.cat([batch["image_features"] for batch in loader])
    assert torch.equal(feats, fresh_features(cache.encoder, paths))
    assert cache.counts() == {"hits": 8, "misses": 8}  # hits counted in the two worker processes


def test_pickled_cache_reopens_its_files(tmp_path, images):
    cache = FeatureCache(tmp_path, PatchEncoder())
    out = cache.get_many(images)
    clone = pickle.loads(pickle.dumps(cache))
    assert torch.equal(clone.get_many(images), out) and clone.hits == 6


def test_two_processes_writing_one_cache_keep_the_index_consistent(tmp_path):
    paths = write_images(tmp_path / "images", 24)
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that has run torch
    barrier, results = ctx.Barrier(2), ctx.Queue()
    # Same images in opposite orders and small batches: both processes encode and race to store.
    workers = [ctx.Process(target=fill_cache, args=(str(tmp_path / "cache"), order, 3, barrier, results))
               for order in (paths, paths[::-1])]
    for w in workers:
        w.start()
    counts = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert all(c["hits"] + c["misses"] == 24 and c["misses"] > 0 for c in counts)  # both wrote rows

    cache = FeatureCache(tmp_path / "cache", PatchEncoder())
    _, *lines = (cache.directory / "index.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert sorted(e["row"] for e in entries) == list(range(24))  # one row per image, no gaps, no repeats
    assert sorted(e["key"][0] for e in entries) == sorted(os.path.realpath(p) for p in paths)
    assert (cache.directory / "rows.bin").stat().st_size == 24 * 16 * 192 * 4
    assert torch.equal(cache.get_many(paths), fresh_features(cache.encoder, paths))
    assert cache.counts() == {"hits": 24, "misses": 0}


def test_prefill_shares_work_across_ranks(tmp_path, images):
    encoder = CountingEncoder(PatchEncoder())
    first = FeatureCache(tmp_path, encoder, batch_size=2)
    assert first.prefill(images, rank=1, world_size=2, device=None) == 6
    # Rank 1 started at the middle of the list; rank 0 then finds everything stored.
    assert FeatureCache(tmp_path, encoder).prefill(images, rank=0, world_size=2, device=None) == 0
    assert encoder.images == 6


def test_a_reader_rank_never_writes_the_cache(tmp_path, images):
    """Under torchrun, ranks other than 0 are readers (writes=False): they use what rank 0
    stored and encode their misses in memory, leaving the cache folder as it was."""
    encoder = CountingEncoder(PatchEncoder())
    reader = FeatureCache(tmp_path / "cache", encoder, writes=False)
    assert reader.prefill(images, device=None) == 0
    fresh = reader.get_many(images[:2])
    assert encoder.images == 2 and fresh.shape[0] == 2
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))  # nothing stored
    writer = FeatureCache(tmp_path / "cache", encoder)
    writer.prefill(images, device=None)
    stored = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    before = encoder.images
    assert torch.equal(FeatureCache(tmp_path / "cache", encoder, writes=False).get_many(images[:2]), fresh)
    assert encoder.images == before  # read back, not encoded again
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*") if p.is_file()} == stored


def test_bad_inputs(tmp_path, images):
    with pytest.raises(AblateError, match="no cache_key"):
        FeatureCache(tmp_path, torch.nn.Linear(2, 2))
    with pytest.raises(AblateError, match="dtype must be one of"):
        FeatureCache(tmp_path, PatchEncoder(), dtype="bfloat16")
    with pytest.raises(DataError, match=r"sample 'x'.*missing\.png"):
        FeatureCache(tmp_path, PatchEncoder()).lookup("x", str(tmp_path / "missing.png"))
    wrong = PatchEncoder()
    wrong.num_tokens = 5
    with pytest.raises(AblateError, match=r"encoder PatchEncoder returned features of shape \[1, 16, 192\], not \[images, num_tokens, feature_dim\] = \[1, 5, 192\]"):
        FeatureCache(tmp_path / "w", wrong).get_many(images[:1])


def test_each_image_aspect_ratio_has_its_own_folder_and_features(tmp_path):
    import numpy as np
    from PIL import Image

    from ablate.data.aspect_ratio import pixel_values

    wide = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 48, 3), dtype=np.uint8)).save(wide)
    encoder, features = TinyClip(), {}
    for mode in ("square", "pad", "resize"):
        cache = FeatureCache(tmp_path / "cache", encoder, image_aspect_ratio=mode)
        assert cache.directory == tmp_path / "cache" / "test-tiny-clip-0" / f"float32-{mode}"
        features[mode] = cache.get_many([str(wide)])
        with torch.no_grad():  # what the uncached collator of that mode feeds the encoder
            fresh = encoder(pixel_values([Image.open(wide).convert("RGB")], encoder.image_processor, mode))
        assert torch.equal(features[mode], fresh)
    assert not torch.equal(features["square"], features["pad"])
    assert not torch.equal(features["square"], features["resize"])
    assert not torch.equal(features["pad"], features["resize"])


def test_stored_lookup_reads_prefilled_features_and_never_encodes(tmp_path, images):
    encoder = CountingEncoder(PatchEncoder())
    cache = FeatureCache(tmp_path, encoder, batch_size=8)
    cache.prefill(images[:4], device=None)
    calls = encoder.calls
    ids = [f"s{i}" for i in range(4)]
    assert torch.equal(cache.stored_lookup(ids, images[:4]), cache.batch_lookup(ids, images[:4]))
    with pytest.raises(DataError, match=r"sample 'late': image '.*img0004.png' is not in the feature cache .* ZeRO-3"):
        cache.stored_lookup(["s0", "late"], [images[0], images[4]])
    assert encoder.calls == calls
