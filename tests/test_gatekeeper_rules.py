"""The gatekeeper's daemon-free rules: host powers, bind sources, limits, logs, names."""

from __future__ import annotations

import pytest

from graders.gatekeeper.binds import BindPins, inside
from graders.gatekeeper.rules import (
    Limits,
    Refused,
    apply_limits,
    check_privileges,
    check_resources,
    normalise,
    registry_of,
)


@pytest.mark.parametrize("host_config, rule", [
    ({"Privileged": True}, "no-privileged"),
    ({"CapAdd": ["SYS_ADMIN"]}, "no-added-capabilities"),
    ({"Devices": [{"PathOnHost": "/dev/sda"}]}, "no-devices"),
    ({"NetworkMode": "host"}, "no-host-namespaces"),
    ({"PidMode": "host"}, "no-host-namespaces"),
    ({"IpcMode": "host"}, "no-host-namespaces"),
    ({"UTSMode": "host"}, "no-host-namespaces"),
    ({"UsernsMode": "host"}, "no-host-namespaces"),
    ({"SecurityOpt": ["seccomp=unconfined"]}, "no-unconfined"),
    ({"SecurityOpt": ["apparmor:unconfined"]}, "no-unconfined"),
    ({"SecurityOpt": ["label:disable"]}, "no-unconfined"),
    ({"CgroupParent": "/"}, "no-cgroup-escape"),
])
def test_host_powers_are_refused_naming_the_rule(host_config, rule):
    with pytest.raises(Refused) as refused:
        check_privileges(host_config)
    assert refused.value.rule == rule
    assert f"gatekeeper refused ({rule})" in str(refused.value)


def test_an_ordinary_container_passes():
    check_privileges({"CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"],
                      "NetworkMode": "bridge", "ReadonlyRootfs": True})


def test_bind_sources_must_stay_in_scratch(tmp_path):
    scratch = tmp_path / "scratch"
    (scratch / "data").mkdir(parents=True)
    assert inside(str(scratch / "data"), [scratch]) == (scratch.resolve(), ["data"])
    assert inside(str(scratch), [scratch]) == (scratch.resolve(), [])
    for outside in ("/", "/var/run/docker.sock", str(tmp_path), str(scratch) + "-other",
                    str(scratch / ".." / "elsewhere")):
        assert inside(outside, [scratch]) is None


def test_a_symlink_out_of_scratch_is_followed_and_refused(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "escape").symlink_to("/")
    assert inside(str(scratch / "escape"), [scratch]) is None
    with pytest.raises(Refused, match="outside"):
        BindPins().pin(str(scratch / "escape"), [scratch], create=False)


def test_unset_limits_get_defaults():
    limits = Limits()
    host = apply_limits({}, limits)
    assert host["Memory"] == limits.memory
    assert host["CpuQuota"] * 1_000_000_000 // host["CpuPeriod"] == limits.nano_cpus
    assert host["PidsLimit"] == limits.pids
    assert host["LogConfig"]["Config"]["max-size"]


def test_limits_a_request_sets_are_kept_below_the_ceiling():
    host = apply_limits({"Memory": 64 * 2**20, "PidsLimit": 20, "CpuQuota": 50_000,
                         "CpuPeriod": 100_000}, Limits())
    assert (host["Memory"], host["PidsLimit"]) == (64 * 2**20, 20)
    assert "NanoCpus" not in host  # Docker refuses NanoCpus beside a quota


@pytest.mark.parametrize("host_config", [
    {"Memory": 8 * 2**30}, {"NanoCpus": 16 * 10**9}, {"PidsLimit": 100_000},
    {"CpuQuota": 800_000, "CpuPeriod": 100_000},
])
def test_limits_above_the_ceiling_are_refused(host_config):
    with pytest.raises(Refused, match="resource-ceiling"):
        apply_limits(host_config, Limits())


@pytest.mark.parametrize("update", [
    {"PidsLimit": -1}, {"PidsLimit": 0}, {"Memory": -1}, {"MemorySwap": -1}, {"CpuQuota": -1},
    {"PidsLimit": 5000},
])
def test_an_update_cannot_lift_a_limit(update):
    """In an update, 0 and -1 mean "unlimited" for pids, -1 for swap and CPU quota."""
    with pytest.raises(Refused, match="resource-ceiling"):
        check_resources(update, Limits(), updating=True)


@pytest.mark.parametrize("log_config, rule", [
    ({"Type": "syslog", "Config": {"syslog-address": "udp://10.0.0.1:514"}}, "bounded-logs"),
    ({"Type": "json-file", "Config": {"max-size": "10g"}}, "bounded-logs"),
    ({"Type": "local", "Config": {"max-file": "100"}}, "bounded-logs"),
])
def test_logs_stay_on_this_host_and_bounded(log_config, rule):
    with pytest.raises(Refused, match=rule):
        apply_limits({"LogConfig": log_config}, Limits())


def test_a_log_without_a_size_gets_one():
    for kind in ("json-file", "local"):
        assert apply_limits({"LogConfig": {"Type": kind}}, Limits())["LogConfig"] == {
            "Type": kind, "Config": {"max-size": "10m"}}


@pytest.mark.parametrize("host_config", [
    {"MaskedPaths": []}, {"ReadonlyPaths": []}, {"Sysctls": {"kernel.shm_rmid_forced": "1"}},
    {"OomKillDisable": True}, {"OomScoreAdj": -1000}, {"Runtime": "io.containerd.runc.v2"},
    {"SecurityOpt": ["apparmor=my-profile"]}, {"VolumeDriver": "flocker"},
])
def test_settings_that_reach_past_the_container_are_refused(host_config):
    with pytest.raises(Refused):
        check_privileges(host_config)


@pytest.mark.parametrize("reference, registry", [
    ("busybox", ""), ("library/busybox:1.35.0", ""), ("user/app", ""),
    ("127.0.0.1:5000/app:1", "127.0.0.1:5000"), ("localhost/app", "localhost"),
    ("registry.example.org/team/app", "registry.example.org"),
])
def test_registry_of_a_reference(reference, registry):
    assert registry_of(reference) == registry


@pytest.mark.parametrize("reference, name", [
    ("busybox", "busybox:latest"), ("docker.io/library/busybox:1.35.0", "busybox:1.35.0"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
])
def test_references_are_compared_in_one_form(reference, name):
    assert normalise(reference) == name


def test_the_image_prune_filters_choose_as_the_daemon_would():
    from graders.gatekeeper.rules import filter_flag, prune_filter

    now = 1_000_000.0
    old = {"Labels": {"team": "a", "keep": "yes"}, "Created": now - 7200}
    new = {"Labels": {"team": "a"}, "Created": now - 60}
    choose = prune_filter({"label": ["team=a"], "label!": ["keep"], "until": ["1h"]}, now)
    assert not choose(old) and not choose(new)
    assert prune_filter({"label": ["team=a"], "until": ["1h"]}, now)(old)
    assert prune_filter({"until": [str(now - 100)]}, now)(old)
    assert filter_flag(["false"], True) is False and filter_flag(None, True) is True
    with pytest.raises(ValueError):
        prune_filter({"reference": ["x"]})
    with pytest.raises(ValueError):
        prune_filter({"until": ["yesterday"]})
