"""Windows-only risks read in the code (issue 27), each reproduced here as far as Linux allows:
the lock released before its file closes, a journal on a network share, a damaged cache that
cannot be deleted, a model file replaced while it is open, the full list of reserved names, and
caches kept off the roaming profile. docs/ROBUSTNESS.md says what was also tried under Wine."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sorter import fsutil, paths
from sorter.errors import SorterError
from sorter.files import feature_cache as feature_cache_module
from sorter.files.feature_cache import FeatureCache
from sorter.files.journal import Journal
from sorter.files.lock import OutputLock
from sorter.names import folder_name_problem
from tests.conftest import REPO


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX; msvcrt's unlock is the same call order")
def test_the_lock_is_unlocked_before_its_file_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    calls: list[int] = []
    real = fcntl.flock

    def recording(fd: int, operation: int) -> None:
        calls.append(operation)
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", recording)
    lock = OutputLock(tmp_path)
    lock.acquire()
    lock.release()
    assert calls == [fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN]
    # a run started just after another takes the folder at once (another process, as a new run is)
    code = "from pathlib import Path; from sorter.files.lock import OutputLock; OutputLock(Path(r'%s')).acquire()"
    again = subprocess.run([sys.executable, "-c", code % tmp_path], cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/photos /mnt/nas nfs4 rw,relatime 0 0
//box/share /mnt/smb\\040share cifs rw 0 0
tmpfs /mnt/nas/tmp tmpfs rw 0 0
"""


def test_network_shares_are_told_from_local_disks() -> None:
    assert fsutil.mount_type(MOUNTS, Path("/home/me/photos")) == "ext4"
    assert fsutil.mount_type(MOUNTS, Path("/mnt/nas/2024/summer")) == "nfs4"
    assert fsutil.mount_type(MOUNTS, Path("/mnt/smb share/x")) == "cifs"
    assert fsutil.mount_type(MOUNTS, Path("/mnt/nas/tmp/x")) == "tmpfs", "the longest mount point wins"
    assert {"nfs4", "cifs"} <= fsutil.NETWORK_FILE_SYSTEMS


def test_on_a_network_share_the_journal_uses_the_rollback_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's WAL needs shared memory on one machine: on a share it would corrupt the journal."""
    monkeypatch.setattr(fsutil, "on_network_share", lambda folder: True)
    with Journal.open(tmp_path / "out") as journal:
        journal.start_run(tmp_path, "copy", "model", "cpu")
    mode = sqlite3.connect(tmp_path / "out" / ".sorter" / "journal.sqlite").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "delete"
    monkeypatch.setattr(fsutil, "on_network_share", lambda folder: False)
    with Journal.open(tmp_path / "local"):
        pass
    mode = sqlite3.connect(tmp_path / "local" / ".sorter" / "journal.sqlite").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"


def test_a_damaged_cache_that_cannot_be_deleted_is_kept_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows raises PermissionError, not FileNotFoundError, for a file open elsewhere."""
    path = tmp_path / "features.sqlite"
    path.write_bytes(b"not a database at all" * 100)

    def held(name: object) -> None:
        raise PermissionError(13, "The process cannot access the file", str(name))

    monkeypatch.setattr(feature_cache_module.os, "unlink", held)
    with FeatureCache.open(path) as cache:
        import numpy as np

        cache.put_many("recipe", {("ab", -1): np.ones(4, dtype=np.float32)})
        assert set(cache.get_many("recipe", [("ab", -1)])) == {("ab", -1)}
    assert path.read_bytes().startswith(b"not a database"), "the file in use is left alone"


def test_a_model_file_in_use_is_replaced_after_a_moment_or_refused_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "general.safetensors"
    target.write_bytes(b"old")
    busy = {"left": 3}
    real = os.replace

    def held_for_a_moment(src: object, dst: object) -> None:
        if busy["left"]:
            busy["left"] -= 1
            raise PermissionError(13, "in use", str(dst))
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(fsutil.os, "replace", held_for_a_moment)
    fsutil.replace_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    busy["left"] = 10_000
    with pytest.raises(fsutil.FileInUseError, match="is in use"):
        fsutil.replace_atomically(target, b"newer")
    assert target.read_bytes() == b"new", "the old file is never half replaced"
    assert [p.name for p in tmp_path.iterdir()] == ["general.safetensors"], "no temporary file is left"


def test_saving_over_a_model_in_use_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from sorter.model.architecture import SorterNet
    from sorter.model.bundle import save_bundle
    from sorter.model.config import BundleConfig

    config = BundleConfig(architecture="efficientnet_lite0", classes=("a", "b"))
    net = SorterNet("efficientnet_lite0", 2)
    path = save_bundle(tmp_path / "m.safetensors", net, config)
    before = path.read_bytes()

    def held(src: object, dst: object) -> None:
        raise PermissionError(13, "in use", str(dst))

    monkeypatch.setattr(fsutil.os, "replace", held)
    monkeypatch.setattr(fsutil.time, "sleep", lambda s: None)
    with torch.no_grad(), pytest.raises(SorterError, match=r"'m\.safetensors' is in use"):
        save_bundle(path, net, config, overwrite=True)
    assert path.read_bytes() == before


def test_every_name_windows_reserves_for_a_device_is_refused() -> None:
    for name in ["COM0", "lpt0", "COM\u00b9", "lpt\u00b2.txt", "LPT\u00b3", "CONIN$", "conout$", "Aux.jpg", "nul "]:
        assert folder_name_problem(name) is not None, name
    for name in ["COM10", "COMPUTER", "LPT", "console", "Auxiliary"]:
        assert folder_name_problem(name) is None, name


def test_on_windows_caches_and_models_stay_off_the_roaming_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SORTER_DATA_DIR", raising=False)
    monkeypatch.delenv("SORTER_CONFIG_DIR", raising=False)
    monkeypatch.setenv("APPDATA", "/profile/Roaming")
    monkeypatch.setenv("LOCALAPPDATA", "/profile/Local")
    monkeypatch.setattr(sys, "platform", "win32")
    assert paths.data_dir() == Path("/profile/Local/Sorter/data")
    assert paths.cache_dir().is_relative_to("/profile/Local") and paths.user_models_dir().is_relative_to(
        "/profile/Local"
    )
    assert paths.config_dir() == Path("/profile/Roaming/Sorter/config"), "settings still roam"
