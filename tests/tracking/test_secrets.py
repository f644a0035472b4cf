"""The shop's one secret (lojal.secrets): environment > Prefect Secret block > the store's generated file."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from lojal.config import Tracking
from lojal.errors import TrackingConfigError
from lojal.paths import Paths
from lojal.secrets import FILE_NAME, load_secrets, shop_secret_bytes


class _Config:
    def __init__(self, block: str | None = None):
        self.tracking = Tracking(secret_block=block)


@pytest.fixture
def paths(tmp_path) -> Paths:
    return Paths(tmp_path / "project", tmp_path / "state")


def test_a_new_store_generates_its_secret_once_private_and_keeps_it(paths):
    first = load_secrets(paths, _Config(), environ={})
    key = paths.state / FILE_NAME
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(first.current) >= 32 and first.source == str(key)
    assert load_secrets(paths, _Config(), environ={}).current == first.current
    assert shop_secret_bytes(paths, _Config(), environ={}) == first.current
    assert first.current.decode() not in repr(first) and first.current.decode() not in str(first)
    assert [p.name for p in paths.state.iterdir()] == [FILE_NAME]  # no temporary file left behind


def test_concurrent_first_uses_agree_on_one_secret(paths):
    seen: list[bytes] = []
    threads = [threading.Thread(target=lambda: seen.append(load_secrets(paths, None, environ={}).current))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and len(seen) == 8


def test_the_environment_wins_over_the_block_and_the_block_over_the_file(paths):
    block = {"lojal-secret": "b" * 40}
    from_block = load_secrets(paths, _Config("lojal-secret"), environ={}, block_loader=block.__getitem__)
    assert from_block.current == b"b" * 40 and "lojal-secret" in from_block.source
    from_env = load_secrets(paths, _Config("lojal-secret"), environ={"LOJAL_SECRET": "e" * 40},
                            block_loader=block.__getitem__)
    assert from_env.current == b"e" * 40
    assert not (paths.state / FILE_NAME).exists()  # never generated while another source is set


def test_a_missing_block_is_a_clear_error_not_a_silent_fallback(paths):
    def missing(name):
        raise ValueError(f"Unable to find block document named {name}")

    with pytest.raises(TrackingConfigError, match="Prefect Secret block 'gone'"):
        load_secrets(paths, _Config("gone"), environ={}, block_loader=missing)
    assert not (paths.state / FILE_NAME).exists()


def test_a_short_readable_or_damaged_secret_is_refused_without_echoing_it(paths):
    with pytest.raises(TrackingConfigError) as caught:
        load_secrets(paths, None, environ={"LOJAL_SECRET": "tooshort-value"})
    assert "tooshort-value" not in str(caught.value)
    with pytest.raises(TrackingConfigError, match="LOJAL_SECRET_PREVIOUS"):
        load_secrets(paths, None, environ={"LOJAL_SECRET": "a" * 32, "LOJAL_SECRET_PREVIOUS": "old"})
    load_secrets(paths, None, environ={})
    key = paths.state / FILE_NAME
    os.chmod(key, 0o644)
    with pytest.raises(TrackingConfigError, match="chmod 600"):
        load_secrets(paths, None, environ={})
    os.chmod(key, 0o600)
    key.write_text("x\n")
    with pytest.raises(TrackingConfigError, match="restore it from your backup"):
        load_secrets(paths, None, environ={})


@pytest.mark.usefixtures("prefect_harness")
def test_a_real_prefect_secret_block(paths):
    from prefect.blocks.system import Secret

    Secret(value="k" * 48).save("lojal-shop-secret-test", overwrite=True)
    secrets = load_secrets(paths, _Config("lojal-shop-secret-test"), environ={})
    assert secrets.current == b"k" * 48 and "lojal-shop-secret-test" in secrets.source
    with pytest.raises(TrackingConfigError, match="'lojal-no-such-block'"):
        load_secrets(paths, _Config("lojal-no-such-block"), environ={})
    assert not (paths.state / FILE_NAME).exists()
