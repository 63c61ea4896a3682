"""The package's wire against the protocol's own test files: every vector decodes to its
meaning, every receiving rule has its outcome."""

import base64
import json
import os
import unittest

from procsup_child import wire

TESTDATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "messages", "wire", "testdata")


def lines(name):
    with open(os.path.join(TESTDATA, name)) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                yield line.rstrip("\n").split("\t")


def canonical(type_, fields):
    """The decoded message as the files write it: bytes in base64."""
    def conv(v):
        if isinstance(v, bytes):
            return base64.b64encode(v).decode()
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return type_, conv(fields)


class Vectors(unittest.TestCase):
    def test_every_vector_decodes_to_its_meaning(self):
        n = 0
        for name, hexframe, meaning in lines("vectors.txt"):
            with self.subTest(name):
                frame = bytes.fromhex(hexframe)
                self.assertEqual(wire.frame_length(frame[:4], wire.DEFAULT_MAX_FRAME), len(frame) - 4)
                type_, fields = canonical(*wire.decode(frame[4:]))
                want = json.loads(meaning)
                self.assertEqual(type_, want["type"])
                for k, v in want["data"].items():
                    self.assertEqual(fields[k], v, k)
                n += 1
        self.assertGreaterEqual(n, 15)

    def test_encode_round_trips(self):
        for name, hexframe, _ in lines("vectors.txt"):
            with self.subTest(name):
                type_, fields = wire.decode(bytes.fromhex(hexframe)[4:])
                data = {k: v for k, v in fields.items() if v is not None}
                self.assertEqual(wire.decode(wire.encode(type_, data)[4:]), (type_, fields))


class Rules(unittest.TestCase):
    def test_every_rule_has_its_outcome(self):
        n = 0
        for name, hexframe, outcome in lines("rules.txt"):
            with self.subTest(name):
                frame = bytes.fromhex(hexframe)
                try:
                    size = wire.frame_length(frame[:4], wire.DEFAULT_MAX_FRAME)
                    type_, fields = canonical(*wire.decode(frame[4:4 + size]))
                    got = "ok"
                except wire.FrameTooLarge:
                    got = "too-large"
                except wire.UnknownType:
                    got = "unknown-type"
                except wire.Malformed:
                    got = "malformed"
                self.assertEqual(got, outcome.split(" ")[0])
                if got == "ok":
                    want = json.loads(outcome[3:])
                    self.assertEqual(type_, want["type"])
                    for k, v in want["data"].items():
                        self.assertEqual(fields[k], v, k)
                n += 1
        self.assertGreaterEqual(n, 20)


if __name__ == "__main__":
    unittest.main()
