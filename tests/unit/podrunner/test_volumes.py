"""The local pod runner's mount plan (hack/podrunner/volumes.py): pure, no cluster."""

from __future__ import annotations

from pathlib import Path

from podrunner.volumes import Bind, mount_script  # hack/ is on sys.path (tests/conftest.py)


def test_a_tmp_volume_is_not_mounted_over_a_checkout_in_tmp(tmp_path):
    checkout = Path("/tmp/some-ci-checkout")
    state = checkout / ".cluster/volumes/pods/uid"
    script = mount_script([Bind(state / "tmp", "/tmp", False),
                           Bind(state / "termination/trainer", "/dev/termination-log", False)],
                          None, protected=(checkout,))
    assert "mount --bind /tmp/some-ci-checkout/.cluster/volumes/pods/uid/tmp /tmp" not in script
    assert f"mount --bind {state}/termination/trainer /dev/termination-log" in script


def test_volumes_elsewhere_are_mounted_read_only_when_asked(tmp_path):
    source = tmp_path / "artifacts"
    source.mkdir()
    script = mount_script([Bind(source, "/artifacts", True)], "/work", protected=(Path("/srv/checkout"),))
    assert f"mount --bind {source} /artifacts" in script
    assert "mount -o remount,bind,ro /artifacts" in script
    assert script.rstrip().endswith('exec "$@"') and "cd /work" in script


def test_a_volume_over_another_volumes_source_is_left_out(tmp_path):
    data = tmp_path / "data"
    script = mount_script([Bind(tmp_path / "x", str(tmp_path), False), Bind(data, "/data", False)], None,
                          protected=())
    assert f"mount --bind {tmp_path / 'x'} {tmp_path}\n" not in script and f"mount --bind {data} /data" in script
