"""The embedded server as root: it changes permissions only in its own state folder, and
says exactly what to run when a folder above it keeps the server's user out."""

from __future__ import annotations

import os
import pwd
import stat

import pytest

from streamflow_dagster.platform.embedded_pg import (
    SYSTEM_USER,
    EmbeddedPostgres,
    EmbeddedPostgresError,
    blocked_folders,
    unreachable_message,
)

OTHER_UID, OTHER_GID = 54_321, 54_321  # a user who owns nothing here


def test_blocked_folders_are_those_the_user_cannot_enter(tmp_path):
    locked = tmp_path / "locked"
    inner = locked / "home" / "postgres"
    inner.mkdir(parents=True)
    locked.chmod(0o700)
    (locked / "home").chmod(0o755)
    tmp_path.chmod(0o755)
    # pytest's own base folder may be private too: those above tmp_path stay as they are.
    above = blocked_folders([tmp_path], OTHER_UID, OTHER_GID)
    try:
        assert blocked_folders([inner], OTHER_UID, OTHER_GID) == [*above, locked]
        # Its owner, and members of its group when the group may enter, pass.
        me = os.stat(locked)
        assert locked not in blocked_folders([inner], me.st_uid, OTHER_GID)
        locked.chmod(0o710)
        assert locked not in blocked_folders([inner], OTHER_UID, me.st_gid)
        assert blocked_folders([inner], OTHER_UID, OTHER_GID) == [*above, locked]
    finally:
        locked.chmod(0o755)


def test_the_message_names_the_folders_and_the_command(tmp_path):
    blocked = [tmp_path / "a b", tmp_path / "a b" / "c"]
    message = unreachable_message(blocked, tmp_path / "a b" / "c" / "postgres")
    assert f"chmod o+x '{tmp_path}/a b' '{tmp_path}/a b/c'" in message
    assert "STREAMFLOW_HOME=" in message and "STREAMFLOW_DATABASE_URL" in message
    assert f"`{SYSTEM_USER}`" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="the server's user switch happens only as root")
def test_as_root_a_locked_parent_stops_the_start_and_is_left_as_it_was(tmp_path):
    pwd.getpwnam(SYSTEM_USER)  # created by the first start on this machine, or here below
    locked = tmp_path / "private"
    locked.mkdir(mode=0o700)
    locked.chmod(0o700)
    server = EmbeddedPostgres(locked / "home" / "postgres")
    with pytest.raises(EmbeddedPostgresError) as raised:
        server.start()
    command = str(raised.value).split("`chmod o+x ", 1)[1].split("`", 1)[0]
    assert str(locked) in command.split()
    assert stat.S_IMODE(locked.stat().st_mode) == 0o700  # not widened behind the user's back
    assert not (server.data_dir / "PG_VERSION").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the server's user switch happens only as root")
def test_as_root_only_the_state_folder_is_opened_and_the_server_folder_handed_over(
    server_home,
):
    home = server_home("perms")  # private (0700), in a folder everyone may enter
    home.chmod(0o700)
    above = {folder: folder.stat().st_mode for folder in home.parents}
    server = EmbeddedPostgres(home / "postgres")
    server.root.mkdir()
    assert server._run_as()["user"] == SYSTEM_USER
    assert stat.S_IMODE(home.stat().st_mode) == 0o701  # search only, for the server's user
    assert server.root.stat().st_uid == pwd.getpwnam(SYSTEM_USER).pw_uid
    assert {folder: folder.stat().st_mode for folder in home.parents} == above
