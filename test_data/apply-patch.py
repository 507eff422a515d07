#!/usr/bin/env python3
"""Applies an RFC 6902 JSON Patch to a JSON document (standard library only).

Usage: apply-patch.py DOCUMENT PATCH   (either may be "-" for stdin, not both)
Prints the patched document as JSON. Implements add, remove, replace, move, copy and
test, with RFC 6901 pointers (~0, ~1), array indices and "-" (end of array). Any error
(bad pointer, index out of range, failed test) exits non-zero: a patch that does not
apply cleanly to the request object is a bug worth seeing.
"""
import copy
import json
import sys


class PatchError(Exception):
    pass


def parse_pointer(pointer):
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def array_index(container, token, allow_end):
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of range (length {len(container)})")
    return index


def resolve_parent(doc, tokens):
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"missing member {token!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[array_index(node, token, False)]
        else:
            raise PatchError(f"cannot descend into a scalar at {token!r}")
    return node


def get(doc, pointer):
    tokens = parse_pointer(pointer)
    if not tokens:
        return doc
    parent = resolve_parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing member {last!r}")
        return parent[last]
    if isinstance(parent, list):
        return parent[array_index(parent, last, False)]
    raise PatchError("cannot index a scalar")


def add(doc, pointer, value):
    tokens = parse_pointer(pointer)
    if not tokens:
        return value
    parent = resolve_parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(array_index(parent, last, True), value)
    else:
        raise PatchError("cannot add into a scalar")
    return doc


def remove(doc, pointer):
    tokens = parse_pointer(pointer)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = resolve_parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"cannot remove missing member {last!r}")
        del parent[last]
    elif isinstance(parent, list):
        del parent[array_index(parent, last, False)]
    else:
        raise PatchError("cannot remove from a scalar")
    return doc


def replace(doc, pointer, value):
    tokens = parse_pointer(pointer)
    if not tokens:
        return value
    get(doc, pointer)  # must exist
    parent = resolve_parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    else:
        parent[array_index(parent, last, False)] = value
    return doc


def apply_patch(doc, patch):
    if not isinstance(patch, list):
        raise PatchError("a JSON Patch is an array of operations")
    for op in patch:
        kind = op.get("op")
        path = op.get("path")
        if kind == "add":
            doc = add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = remove(doc, path)
        elif kind == "replace":
            doc = replace(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            value = get(doc, op["from"])
            doc = remove(doc, op["from"])
            doc = add(doc, path, value)
        elif kind == "copy":
            doc = add(doc, path, copy.deepcopy(get(doc, op["from"])))
        elif kind == "test":
            if get(doc, path) != op["value"]:
                raise PatchError(f"test failed at {path}")
        else:
            raise PatchError(f"unknown op {kind!r}")
    return doc


def load(name):
    if name == "-":
        return json.load(sys.stdin)
    with open(name, encoding="utf-8") as f:
        return json.load(f)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    doc, patch = load(sys.argv[1]), load(sys.argv[2])
    try:
        result = apply_patch(doc, patch)
    except (PatchError, KeyError, TypeError) as e:
        sys.exit(f"apply-patch: {e}")
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
