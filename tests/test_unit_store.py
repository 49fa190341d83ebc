"""The resumable store of long jobs (``mtt-nc compare``, ``mtt-nc distill``): one
process per folder, held by a lock on the folder itself."""

import subprocess
import sys
import textwrap

import pytest

from metatrain_nc.errors import UserInputError
from metatrain_nc.unit_store import OWNER_FILE, UnitStore

PROTOCOL = {"inputs": ["a.xyz"], "settings": {"steps": 10}}

# a second process that opens the store, reports, and works until told to stop
HOLDER = textwrap.dedent(
    """
    import sys
    from metatrain_nc.unit_store import UnitStore

    protocol = {"inputs": ["a.xyz"], "settings": {"steps": 10}}
    with UnitStore(sys.argv[1], protocol, resume=True, force=False) as store:
        store.save("first", {"value": 1})
        print("ready", flush=True)
        sys.stdin.read()  # until the test closes the pipe
    """
)


@pytest.fixture
def held_folder(tmp_path):
    """A store folder with one finished unit, held by another running process."""
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield folder, holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def _listing(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_folder_in_use_is_refused_even_without_its_owner_file(held_folder):
    """The lock is on the folder: a second run is refused while the first works,
    with the first one's process id, and still refused once the file naming it is
    deleted; ``--force`` does not move the running job's folder away."""
    folder, holder = held_folder
    assert (folder / OWNER_FILE).read_text() == str(holder.pid)
    with pytest.raises(UserInputError, match=f"process {holder.pid}"):
        UnitStore(folder, PROTOCOL, resume=True, force=False)

    (folder / OWNER_FILE).unlink()
    before = _listing(folder)
    for resume, force in ((True, False), (False, True)):
        with pytest.raises(UserInputError, match="is working in"):
            UnitStore(folder, PROTOCOL, resume=resume, force=force)
    assert _listing(folder) == before
    assert [p.name for p in folder.parent.iterdir()] == ["run"]  # nothing moved


def test_the_folder_is_free_when_its_run_ends(held_folder, tmp_path):
    folder, holder = held_folder
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    with UnitStore(folder, PROTOCOL, resume=True, force=False) as store:
        assert store.load("first") == {"value": 1}
        assert (folder / OWNER_FILE).read_text().strip().isdigit()
    with UnitStore(folder, PROTOCOL, resume=False, force=True) as store:
        assert store.load("first") is None  # replaced
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the old one removed


def test_a_folder_that_is_no_store_is_left_as_it_was(tmp_path):
    """Resuming a folder without protocol.json is refused and nothing is written
    into it (not even the owner note)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    with pytest.raises(UserInputError, match="protocol.json"):
        UnitStore(folder, PROTOCOL, resume=True, force=False)
    assert _listing(folder) == ["notes.txt"]
    # and the refusal released the folder: a replacement may take it
    with UnitStore(folder, PROTOCOL, resume=False, force=True):
        assert not (folder / "notes.txt").exists()
