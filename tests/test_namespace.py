from graders.namespace import Namespace
from graders.settings import NAMESPACE_LABEL, NAMESPACE_LENGTH


def test_namespaces_are_fixed_length_and_distinct():
    names = [Namespace.for_submission("02-containers", s).value
             for s in ("alice", "alice-2", "bob", "ALICE", "a" * 200, "名前")]
    assert all(len(n) == NAMESPACE_LENGTH for n in names)
    assert len(set(names)) == len(names)
    assert not any(a != b and b.startswith(a) for a in names for b in names)


def test_namespace_is_stable_and_depends_on_assignment():
    assert Namespace.for_submission("a1", "alice") == Namespace.for_submission("a1", "alice")
    assert Namespace.for_submission("a1", "alice") != Namespace.for_submission("a2", "alice")


def test_namespace_is_a_valid_docker_name_and_labels_objects():
    ns = Namespace.for_submission("02-containers", "Jane Doe/../x")
    assert ns.value.isalnum() and ns.value.islower()
    assert ns.labels == {NAMESPACE_LABEL: ns.value}
