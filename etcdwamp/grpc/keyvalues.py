"""Wire :class:`~etcdwamp.wire.KeyValue` objects over ``mvccpb.KeyValue`` messages.

A range answer's key-values are read from the answer's message on first use, all six
fields at once: a large range is often read for its count, its first keys or a few
values, and building every key-value's fields up front was most of its decoding (~0.6
of ~0.9 us per key-value, ``benchmarks/grpc_codec.py``). Reading any field of one turns
it into a plain :class:`KeyValue` (its class is switched, the layout being the same), so
later reads cost what they cost on any key-value; a caller that reads every key-value
pays about what the eager decoding cost in a client process (measured there, where the
cyclic GC over the key-values is most of the cost either way).

Until it is read, a key-value keeps the answer's protobuf arena (the whole answer's
bytes) alive.
"""

from __future__ import annotations

from typing import Any

from ..wire.results import KeyValue

__all__ = ["lazy_key_values"]

_FIELDS = ("key", "value", "create_revision", "mod_revision", "version", "lease")
_SLOTS: Any = tuple(KeyValue.__dict__[name] for name in _FIELDS)
_SETTERS = tuple(slot.__set__ for slot in _SLOTS)
#: until decoded, the ``key`` slot holds the answer's repeated field and the ``value`` slot
#: the key-value's index in it (no slot is added, so that the class can become KeyValue:
#: ``__class__`` assignment needs the same layout). Not the message itself: upb's message
#: objects are tracked by the cyclic GC, and one per key-value doubled what a 10,000-key
#: range brought it (see :func:`lazy_key_values`).
_get_messages = _SLOTS[0].__get__
_get_index = _SLOTS[1].__get__
_set_class = object.__setattr__


def _field(index: int) -> property:
    slot_get = _SLOTS[index].__get__
    get_messages, get_index, set_class, plain = _get_messages, _get_index, _set_class, KeyValue
    set_key, set_value, set_create, set_mod, set_version, set_lease = _SETTERS

    # Everything bound in the closure, no method call: it runs once per key-value of a
    # range whose reader reads them all.
    def get(self: _MessageKeyValue) -> Any:
        message = get_messages(self)[get_index(self)]
        set_key(self, message.key)
        set_value(self, message.value)
        set_create(self, message.create_revision)
        set_mod(self, message.mod_revision)
        set_version(self, message.version)
        set_lease(self, message.lease)
        set_class(self, "__class__", plain)
        return slot_get(self)

    return property(get)


class _MessageKeyValue(KeyValue):
    """A :class:`KeyValue` over its protobuf message until a field is read."""

    __slots__ = ()

    key = _field(0)
    value = _field(1)
    create_revision = _field(2)
    mod_revision = _field(3)
    version = _field(4)
    lease = _field(5)

    def __reduce__(self) -> tuple[Any, ...]:
        # copy and pickle make a plain KeyValue (this class has no __init__ of its own).
        return KeyValue, self._fields()


def lazy_key_values(messages: Any) -> tuple[KeyValue, ...]:
    """Wire key-values of a repeated ``mvccpb.KeyValue`` field, each read from its
    message on first use (see the module docstring)."""
    new, cls = object.__new__, _MessageKeyValue
    set_messages, set_index = _SETTERS[0], _SETTERS[1]
    out: list[KeyValue] = []
    append = out.append
    for index in range(len(messages)):
        kv = new(cls)
        set_messages(kv, messages)
        set_index(kv, index)
        append(kv)
    return tuple(out)
