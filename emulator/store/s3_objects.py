"""S3 objects kept on disk, not in memory: what lets an emulator that archives every device message run
for hours without its memory climbing.

moto keeps every S3 object (a ``FakeKey``: its body, metadata and some forty attributes, about 6 KB)
in the bucket's ``keys`` mapping, in memory, and the emulator's snapshot pickled all of them every
few seconds while holding the interpreter. With :func:`activate`, every bucket moto creates keeps its
objects in one SQLite file beside the snapshot (``STATE/emulator.objects``) instead: each key name's
versions, pickled, in a row. A few hundred recently used key names stay in memory (read, written back
when they leave, so what moto changes on an object it has read is kept), so memory stays flat
however large the archive grows, and the snapshot pickles a bucket as the name of its rows.

moto lists a bucket by reading and sorting every object in it, for every page; for buckets kept here,
:func:`activate` has ``ListObjects`` and ``ListObjectsV2`` hand moto's own code only the keys of the
page asked for (read in order from the file's index, by prefix and from the marker), so the answer is
moto's, and a page costs the same at ten objects as at a million.

moto also keeps an empty tag set for every object that has no tags (``S3Backend.tagger``, by the
object's ARN), so memory grew with the archive there too: an empty one is dropped, which changes no
answer (an object without an entry has no tags).

This module is the one place that knows how moto's S3 holds objects (``FakeBucket.keys``, a
``_VersionedKeyStore``), lists them (``S3Backend.list_objects``, ``list_objects_v2``) and tags them
(``put_object_tagging``); moto 5.2.
"""

from __future__ import annotations

import collections
import functools
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from moto.s3.models import FakeBucket, FakeDeleteMarker, FakeTableStorageBucket, S3Backend
from moto.s3.utils import _VersionedKeyStore

from emulator.store.object_file import ObjectFile, ObjectFileError

HOT_NAMES = 256  # key names per bucket kept in memory after use
_PAGE = 512  # names read from the index at a time while listing


_active: ObjectFile | None = None


def _file() -> ObjectFile:
    if _active is None:
        raise ObjectFileError("The emulator's S3 objects are kept on disk, and no object file is open.")
    return _active


def _upper(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (None: no bound)."""
    while prefix and ord(prefix[-1]) == 0x10FFFF:
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


def _dumps(versions: list) -> bytes:
    return pickle.dumps(versions, protocol=5)


class DiskKeyStore(_VersionedKeyStore):
    """A bucket's ``keys`` whose entries (a key name's list of versions) live in the object file, the
    recently used ones also in memory. moto's own dict is left empty; every method moto calls is here."""

    def __init__(self, store: str | None = None) -> None:
        super().__init__()
        self.store = store or uuid.uuid4().hex
        self._objects = _file()
        self._hot: collections.OrderedDict[str, list] = collections.OrderedDict()
        self._capacity = HOT_NAMES

    def __reduce__(self) -> Any:  # a snapshot holds the bucket's rows by name, written first
        self.write_back()
        return (_reopen, (self.store,))

    # -- the rows, through the hot names ---------------------------------------------------------

    def _load(self, name: str) -> list | None:
        with self._objects.lock:
            if name in self._hot:
                self._hot.move_to_end(name)
                return self._hot[name]
            data = self._objects.versions(self.store, name)
            if data is None:
                return None
            versions = pickle.loads(data)  # noqa: S301  # our own file, checked as the snapshot is
            self._keep(name, versions)
            return versions

    def _peek_list(self, name: str) -> list | None:
        """A name's versions without keeping them in memory (listing, iterating): moto only reads them."""
        with self._objects.lock:
            if name in self._hot:
                return self._hot[name]
            data = self._objects.versions(self.store, name)
        return None if data is None else pickle.loads(data)  # noqa: S301  # our own file

    def _peek(self, name: str) -> Any:
        versions = self._peek_list(name)
        return versions[-1] if versions else None

    def _keep(self, name: str, versions: list) -> None:
        self._hot[name] = versions
        self._hot.move_to_end(name)
        while len(self._hot) > self._capacity:
            old, old_versions = self._hot.popitem(last=False)
            self._objects.write(self.store, [(old, _dumps(old_versions))])  # what moto changed on it since is kept

    def write_back(self) -> None:
        """Write every name held in memory to the file (a snapshot is about to name these rows)."""
        with self._objects.lock:
            if self._hot:
                self._objects.write(self.store, [(name, _dumps(versions)) for name, versions in self._hot.items()])

    def _names(self, start: str = "", stop: str | None = None) -> Iterator[str]:
        """Key names from ``start`` (inclusive) below ``stop``, in order, read a page at a time."""
        bound, inclusive = start, True
        while True:
            names = self._objects.names(self.store, bound, inclusive=inclusive, below=stop, limit=_PAGE)
            yield from names
            if len(names) < _PAGE:
                return
            bound, inclusive = names[-1], False

    # -- what moto calls ------------------------------------------------------------------------

    def getlist(self, key: str, default: Any = None) -> Any:
        found = self._load(key)
        return default if found is None else found

    def __sgetitem__(self, key: str) -> list[Any]:
        found = self._load(key)
        if found is None:
            raise KeyError(key)
        return found

    def __getitem__(self, key: str) -> Any:
        return self.__sgetitem__(key)[-1]

    def get(self, key: str, default: Any = None) -> Any:
        found = self._load(key)
        return found[-1] if found else default

    def __setitem__(self, key: str, value: Any) -> None:
        with self._objects.lock:
            versions = list(self.getlist(key, []))
            versions.append(value)
            self.setlist(key, versions)

    def setlist(self, key: Any, list_: Any) -> None:
        if isinstance(list_, tuple):
            list_ = list(list_)
        elif not isinstance(list_, list):
            list_ = [list_]
        with self._objects.lock:
            for existing in self.getlist(key, []):
                if existing not in list_ and hasattr(existing, "dispose"):
                    existing.dispose()
            self._objects.write(self.store, [(key, _dumps(list_))])  # the name is listed from now on
            self._keep(key, list_)

    def pop(self, key: str, *default: Any) -> Any:
        with self._objects.lock:
            versions = self._load(key)
            if versions is None:
                if default:
                    return default[0]
                raise KeyError(key)
            for version in versions:
                version.dispose()
            self._hot.pop(key, None)
            self._objects.delete(self.store, key)
            return versions

    def __delitem__(self, key: str) -> None:
        with self._objects.lock:
            if self._load(key) is None:
                raise KeyError(key)
            self._hot.pop(key, None)
            self._objects.delete(self.store, key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._peek_list(key) is not None

    def __len__(self) -> int:
        return self._objects.count(self.store)

    def __bool__(self) -> bool:
        return bool(self._objects.names(self.store, "", inclusive=True, below=None, limit=1))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names()))

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(self._names())

    def item_size(self) -> int:
        return self._objects.size(self.store)

    def _self_iterable(self) -> dict[str, Any]:
        return dict(self._iterlists())

    def _iteritems(self) -> Iterator[tuple[str, Any]]:
        for name in self._names():
            latest = self._peek(name)
            if latest is not None:
                yield name, latest

    def _itervalues(self) -> Iterator[Any]:
        for _name, value in self._iteritems():
            yield value

    def _iterlists(self) -> Iterator[tuple[str, list[Any]]]:
        for name in self._names():
            versions = self._peek_list(name)
            if versions is not None:
                yield name, versions

    items = iteritems = _iteritems
    lists = iterlists = _iterlists
    values = itervalues = _itervalues

    def clear(self) -> None:
        with self._objects.lock:
            self._hot.clear()
            self._objects.delete(self.store)

    # -- one page of a listing --------------------------------------------------------------------

    def window(self, prefix: str, delimiter: str, after: str | None, wanted: int | None, *, v2: bool) -> list:
        """What moto's listing keeps of this bucket, as (name, latest version) pairs in order: the keys
        under ``prefix`` past ``after``, one more than ``wanted`` (None: all) so moto sees the page is
        truncated, and one name under each common prefix (moto takes only its name). ``v2``: as
        ListObjectsV2, which keeps only the common prefixes past ``after`` and counts them with the keys;
        else as moto's ListObjects, which keeps every common prefix and counts only the keys."""
        found: list[tuple[str, Any]] = []
        keys = entries = 0
        stop = _upper(prefix)
        names = self._names(max(prefix, after) if v2 and after is not None else prefix, stop)
        while (name := next(names, None)) is not None:
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                folder = prefix + rest.split(delimiter)[0] + delimiter
                if not v2 or after is None or folder > after:
                    found.append((name, None))
                    entries += 1
                names = self._names(_upper(folder) or folder, stop)  # past every key under it
            elif (after is None or name > after) and (wanted is None or keys <= wanted):
                latest = self._peek(name)
                if latest is not None and not isinstance(latest, FakeDeleteMarker):
                    found.append((name, latest))
                    keys, entries = keys + 1, entries + 1
            if wanted is not None and (entries if v2 else keys) > wanted and (v2 or not delimiter):
                break
        return found


def _reopen(store: str) -> DiskKeyStore:
    return DiskKeyStore(store)


class _Window:
    """A bucket as moto's listing code sees it: only ``keys.items()``, holding one page's worth."""

    def __init__(self, found: list) -> None:
        self.keys = SimpleNamespace(items=lambda: iter(found))


def _disk_keys(bucket: Any) -> DiskKeyStore | None:
    keys = getattr(bucket, "keys", None)
    return keys if isinstance(keys, DiskKeyStore) and not isinstance(bucket, FakeTableStorageBucket) else None


def _list_objects(original: Any) -> Any:
    @functools.wraps(original)
    def list_objects(self: Any, bucket: Any, prefix: Any, delimiter: Any, marker: Any, max_keys: Any) -> Any:
        keys = _disk_keys(bucket)
        if keys is not None:
            after = (self._pagination_tokens.get(marker) or marker) if marker else None
            bucket = _Window(keys.window(prefix or "", delimiter or "", after, max_keys, v2=False))
        return original(self, bucket, prefix, delimiter, marker, max_keys)

    list_objects.__wrapped_by_jitr__ = True  # type: ignore[attr-defined]
    return list_objects


def _list_objects_v2(original: Any) -> Any:
    @functools.wraps(original)
    def list_objects_v2(
        self: Any, bucket: Any, prefix: Any, delimiter: Any, continuation_token: Any, start_after: Any, max_keys: Any
    ) -> Any:
        keys = _disk_keys(bucket)
        after = self._pagination_tokens.get(continuation_token) if continuation_token else (start_after or None)
        if keys is not None and not (continuation_token and after is None):  # a token moto does not know: its own
            bucket = _Window(keys.window(prefix or "", delimiter or "", after, max_keys, v2=True))
        return original(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)

    list_objects_v2.__wrapped_by_jitr__ = True  # type: ignore[attr-defined]
    return list_objects_v2


def _put_object_tagging(original: Any) -> Any:
    @functools.wraps(original)
    def put_object_tagging(self: Any, key: Any, tags: Any, *rest: Any, **kwargs: Any) -> Any:
        tagged = original(self, key, tags, *rest, **kwargs)
        if not self.tagger.tags.get(key.arn):  # moto keeps an empty entry for every untagged object: the same answers
            self.tagger.tags.pop(key.arn, None)
        return tagged

    return put_object_tagging


def _bucket_init(original: Any) -> Any:
    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if _active is not None:
            self.keys = DiskKeyStore()

    init.__wrapped_by_jitr__ = True  # type: ignore[attr-defined]
    return init


def _patch() -> None:
    if getattr(FakeBucket.__init__, "__wrapped_by_jitr__", False):
        return
    FakeBucket.__init__ = _bucket_init(FakeBucket.__init__)  # type: ignore[method-assign]
    S3Backend.list_objects = _list_objects(S3Backend.list_objects)  # type: ignore[method-assign]
    S3Backend.list_objects_v2 = _list_objects_v2(S3Backend.list_objects_v2)  # type: ignore[method-assign]
    S3Backend.put_object_tagging = _put_object_tagging(S3Backend.put_object_tagging)  # type: ignore[method-assign]


def activate(path: Path) -> ObjectFile:
    """Keep the objects of every bucket created from now on (and of every bucket a snapshot loads) in the
    file at ``path``."""
    global _active
    _patch()
    _active = ObjectFile(path)
    return _active


def deactivate() -> None:
    """Buckets created from now on keep their objects in memory again; those kept on disk stay so (their
    file stays open while they live)."""
    global _active
    _active = None


def adopt(s3_backends: list[Any]) -> None:
    """After a snapshot is installed: move the objects of buckets still held in memory (a snapshot from
    before this file, or buckets made before :func:`activate`) to the file, and delete the rows no bucket
    names any more (buckets created after the last snapshot, lost with it)."""
    live: set[str] = set()
    for backend in s3_backends:
        for bucket in list(backend.buckets.values()):
            if not isinstance(bucket.keys, DiskKeyStore):
                moved = DiskKeyStore()
                for name, versions in list(bucket.keys.iterlists()):
                    _file().write(moved.store, [(name, _dumps(list(versions)))])
                bucket.keys = moved
            live.add(bucket.keys.store)
    _file().drop_stores_except(live)
