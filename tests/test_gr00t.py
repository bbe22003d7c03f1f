"""GR00T remote policies: the wire format, N1.5/N1.6 clients against live `serve` processes, and failures.

Servers are real `python -m policies.gr00t.serve` processes on free localhost ports, serving a tiny random-weight
VLA checkpoint; clients are the registered `gr00t`/`gr00t16` policies. The reference for every action is an
in-process `VLAPolicy` on the same checkpoint, seed and observations.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import select
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch
import zmq

from eval import grid
from eval.results import COLUMNS
from eval.runner import Episode, run_episode
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.instructions import SEED_INSTRUCTIONS, Instruction
from leisaac_tasks.intent import Intent
from leisaac_tasks.scenarios import Scenario, scenario_set
from leisaac_tasks.units import sim_to_lerobot
from policies.base import PolicyError
from policies.gr00t import serve, wire
from policies.gr00t.client import TOKEN_ENV, ServerUnavailable, parse_spec
from policies.gr00t.n15 import Gr00tN15Policy
from policies.gr00t.n16 import Gr00tN16Policy
from policies.gr00t.protocol import LANGUAGE_KEY
from policies.gr00t.transport import Connection, Endpoint, ServerErrorReply
from policies.registry import make_policy
from policies.vla.config import PRESETS
from policies.vla.model import VLA
from policies.vla.normalize import NormStats
from policies.vla.policy import VLAPolicy

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "chefmate-test-token"
IMAGE_SIZE = 64
CHUNK_STEPS = 8
STEPS = 2 * CHUNK_STEPS + 1  # three chunk requests per episode: chunks 0, 1 and 2 of the noise stream


# --- fixtures: one checkpoint, live servers --------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Both sides on one thread: the same float reduction order, and no thread spinning on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    arm_state = ((-100.0,) * 5 + (0.0,), (100.0,) * 5 + (100.0,))
    norm = NormStats(*arm_state, action_min=(-30.0,) * 5 + (0.0,), action_max=(30.0,) * 5 + (100.0,),
                     horizon=PRESETS["tiny"].action_horizon)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    VLA(PRESETS["tiny"], norm).save(path)
    return path


class Served:
    """A `python -m policies.gr00t.serve` process; its port comes from the ready line (started with port 0)."""

    def __init__(self, checkpoint: Path, log: Path, *args: str):
        self.checkpoint, self.log, self.args, self.port = checkpoint, log, args, 0
        self.start()

    def start(self) -> "Served":
        """(Re)start on the same port: clients keep their address across a server restart."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        env.pop(TOKEN_ENV, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "policies.gr00t.serve", "--checkpoint", str(self.checkpoint), "--port",
             str(self.port), *self.args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log.open("ab"),
            text=True)
        return self

    def wait_ready(self, within: float = 90.0) -> "Served":
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if "Server is ready and listening on tcp://" in line:
                    self.port = int(line.split("tcp://", 1)[1].split()[0].rsplit(":", 1)[1])
                    return self
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        raise AssertionError(f"serve not ready within {within} s: {self.log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def servers(checkpoint, tmp_path_factory):
    """An N1.5 server with a token and request recording, and an N1.6 server; started together (startup is
    mostly imports)."""
    tmp = tmp_path_factory.mktemp("servers")
    n15 = Served(checkpoint, tmp / "n15.log", "--api-token", TOKEN, "--record-dir", str(tmp / "requests"))
    n16 = Served(checkpoint, tmp / "n16.log", "--protocol", "n1.6")
    try:
        yield {"n1.5": n15.wait_ready(), "n1.6": n16.wait_ready(), "records": tmp / "requests"}
    finally:  # SIGKILL: a graceful exit spends seconds finalising torch, and nothing here depends on it
        for served in (n15, n16):
            served.proc.kill()
            served.proc.wait()


def raw_call(port: int, message: object, timeout_ms: int = 20000) -> object:
    """One request on a plain REQ socket, the way any upstream client would send it; bytes go as they are."""
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(message if isinstance(message, bytes) else wire.pack(message))
        assert sock.poll(timeout_ms), "the server did not answer"
        return wire.unpack(sock.recv())


def lockstep(env: SandwichEnv, remote, local: VLAPolicy, scenario: Scenario, instruction: str, seed: int,
             steps: int = STEPS) -> tuple[float, list[dict]]:
    """Both policies see the same observations; the remote one drives. Returns the largest action difference
    (radians) and, per chunk request, what the client should have sent."""
    obs, info = env.reset(seed=seed, options={"scenario": scenario, "instruction": instruction})
    remote.reset(instruction, seed)
    local.reset(instruction, seed)
    worst, sent = 0.0, []
    for step in range(steps):
        if step % CHUNK_STEPS == 0:
            sent.append({"front": obs["front"].copy(), "wrist": obs["wrist"].copy(), "state": obs["state"].copy(),
                         "instruction": instruction, "seed": seed, "chunk": step // CHUNK_STEPS})
        action, reference = remote.act(obs, info), local.act(obs, info)
        assert action.shape == (6,)
        worst = max(worst, float(np.abs(action - reference).max()))
        obs, _, _, _, info = env.step(action)
    return worst, sent


# --- the wire format ----------------------------------------------------------------------------------------------
def test_arrays_round_trip_with_dtype_shape_and_values_encoded_as_upstream():
    rng = np.random.default_rng(0)
    arrays = {
        "frames": rng.integers(0, 256, (1, 4, 5, 3), dtype=np.uint8),
        "float32": rng.normal(size=(16, 5)).astype(np.float32),
        "float64": np.array([[1.0 / 3.0]]),
        "int64_empty": np.zeros((0, 3), dtype=np.int64),
        "bool": np.array([True, False, True]),
        "float16_scalar": np.array(2.5, dtype=np.float16),
        "big_endian": np.arange(4, dtype=">f8"),
        "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
        "strided": np.arange(20, dtype=np.int32)[::3],
    }
    message = {"endpoint": "get_action", "data": {**arrays, "nested": [arrays["float32"], {"x": arrays["bool"]}],
                                                  "text": ["pick up the bread"]}}
    back = wire.unpack(wire.pack(message))
    for name, original in arrays.items():
        got = back["data"][name]
        assert got.dtype == original.dtype and got.shape == original.shape, name
        np.testing.assert_array_equal(got, original)
    np.testing.assert_array_equal(back["data"]["nested"][0], arrays["float32"])
    np.testing.assert_array_equal(back["data"]["nested"][1]["x"], arrays["bool"])
    assert back["data"]["text"] == ["pick up the bread"]

    # Byte level: an array is the map Isaac-GR00T's MsgSerializer writes, {"__ndarray_class__": True,
    # "as_npy": np.save bytes}, readable by plain msgpack + np.load without this module.
    plain = msgpack.unpackb(wire.pack({"a": arrays["float32"]}))
    assert set(plain["a"]) == {"__ndarray_class__", "as_npy"} and plain["a"]["__ndarray_class__"] is True
    np.testing.assert_array_equal(np.load(io.BytesIO(plain["a"]["as_npy"]), allow_pickle=False), arrays["float32"])


def test_request_envelope_and_bad_bytes():
    assert wire.request("ping") == {"endpoint": "ping"}  # input-less endpoints carry no data, as upstream
    assert wire.request("get_action", {"k": 1}, "tok") == {"endpoint": "get_action", "data": {"k": 1},
                                                           "api_token": "tok"}
    with pytest.raises(wire.WireError, match="not a GR00T msgpack message"):
        wire.unpack(b"\xc1\x00 definitely not msgpack")
    with pytest.raises(TypeError, match="numpy arrays"):
        wire.pack({"x": object()})


def test_specs_parse_host_port_and_options():
    assert (parse_spec("", "gr00t").host, parse_spec("", "gr00t").port) == ("localhost", 5555)
    assert parse_spec("6000", "gr00t").port == 6000
    assert (parse_spec("gpu-box", "gr00t").host, parse_spec("gpu-box", "gr00t").port) == ("gpu-box", 5555)
    cfg = parse_spec("10.0.0.2:5556?n_action_steps=16&timeout_s=2.5", "gr00t")
    assert (cfg.host, cfg.port, cfg.n_action_steps, cfg.timeout_s) == ("10.0.0.2", 5556, 16, 2.5)
    with pytest.raises(ValueError, match="port 'x' is not a number"):
        parse_spec("host:x", "gr00t")
    with pytest.raises(ValueError, match="unknown option 'speed=3'"):
        parse_spec("host:1?speed=3", "gr00t")


# --- N1.5 end to end: every matrix cell -------------------------------------------------------------------------
def test_every_cell_round_trips_the_observation_and_matches_the_in_process_vla(servers, checkpoint, env,
                                                                               monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)  # the token reaches the client from the environment
    port, records = servers["n1.5"].port, servers["records"]
    remote = make_policy(f"gr00t:127.0.0.1:{port}?n_action_steps={CHUNK_STEPS}&timeout_s=30")
    local = VLAPolicy(checkpoint, n_action_steps=CHUNK_STEPS, device="cpu")
    assert remote.abilities.cameras == ("front", "wrist") and not remote.abilities.privileged
    already = set(records.iterdir())
    worst, expected = 0.0, []
    for index, scenario in enumerate(scenario_set()):
        instruction = SEED_INSTRUCTIONS[index % len(SEED_INSTRUCTIONS)].text
        diff, sent = lockstep(env, remote, local, scenario, instruction, seed=100 + index)
        worst = max(worst, diff)
        expected += sent
    remote.close()
    assert len(expected) == 8 * 3
    assert worst < 1e-5, f"remote and in-process actions differ by {worst} rad"

    # What the server received, byte for byte (--record-dir), is the observation the client saw.
    received = [wire.unpack(p.read_bytes()) for p in sorted(set(records.iterdir()) - already)]
    requests = [r for r in received if r.get("endpoint") == "get_action"]
    assert len(requests) == len(expected)
    for request, want in zip(requests, expected):
        data = request["data"]
        assert request["api_token"] == TOKEN
        assert request["options"] == {"seed": want["seed"], "chunk": want["chunk"]}
        for cam in ("front", "wrist"):
            frame = data[f"video.{cam}"]
            assert frame.dtype == np.uint8 and frame.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
            np.testing.assert_array_equal(frame[0], want[cam])
        lerobot = sim_to_lerobot(want["state"])
        assert data["state.single_arm"].shape == (1, 5) and data["state.gripper"].shape == (1, 1)
        np.testing.assert_array_equal(data["state.single_arm"][0], lerobot[:5])
        np.testing.assert_array_equal(data["state.gripper"][0], lerobot[5:])
        assert data["annotation.human.task_description"] == [want["instruction"]]
    print(f"\n8 cells x 3 chunks: largest remote-vs-in-process action difference {worst:.2e} rad")


def upstream_squeeze_dict_values(data: dict) -> dict:
    """The rule of Isaac-GR00T's gr00t/model/policy.py since its fix: only the batch axis is removed."""
    return {k: np.squeeze(v, axis=0) if isinstance(v, np.ndarray) else v for k, v in data.items()}


def test_n15_reply_has_upstream_shapes(servers):
    """Upstream's unbatched reply: the model's batched (1, 16, D) output with only the batch axis removed, so the
    gripper is (16, 1), and the client reads it (and the (16,) that older upstream sent)."""
    frame = np.zeros((1, 48, 80, 3), np.uint8)  # any image size: the server resizes
    data = {"video.front": frame, "video.wrist": frame, "state.single_arm": np.zeros((1, 5)),
            "state.gripper": np.full((1, 1), 50.0), "annotation.human.task_description": ["do not pick up the cheese"]}
    reply = raw_call(servers["n1.5"].port, wire.request("get_action", data, TOKEN))
    assert set(reply) == {"action.single_arm", "action.gripper"}
    batched = {k: v[None] for k, v in reply.items()}  # what upstream's model returned before squeezing
    for key, value in upstream_squeeze_dict_values(batched).items():
        assert reply[key].shape == value.shape, key
    assert reply["action.single_arm"].shape == (16, 5) and reply["action.gripper"].shape == (16, 1)
    assert reply["action.single_arm"].dtype == reply["action.gripper"].dtype == np.float32
    from policies.gr00t.n15 import N15Protocol

    chunk = N15Protocol().decode_actions(reply)
    old = N15Protocol().decode_actions({**reply, "action.gripper": reply["action.gripper"][:, 0]})
    assert chunk.shape == (16, 6) and np.array_equal(chunk, old)
    # no options: seed 0, chunk 0, so the same observation always gets the same chunk
    again = raw_call(servers["n1.5"].port, wire.request("get_action", data, TOKEN))
    np.testing.assert_array_equal(again["action.single_arm"], reply["action.single_arm"])


def test_n15_modality_config_is_upstreams_so100_dualcam(servers):
    """Isaac-GR00T N1.5's So100DualCamDataConfig (gr00t/experiment/data_config.py): keys carry their modality's
    prefix, and each ModalityConfig travels as pydantic's JSON string."""
    port = servers["n1.5"].port
    request = wire.pack(wire.request("get_modality_config", api_token=TOKEN))
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:  # the raw reply: check the N1.5 tagging on the wire
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(request)
        assert sock.poll(20000), "the server did not answer"
        plain = msgpack.unpackb(sock.recv())
    assert set(plain) == {"video", "state", "action", "language"}
    for tagged in plain.values():
        assert set(tagged) == {wire.MODALITY_CONFIG_TAG, "as_json"} and tagged[wire.MODALITY_CONFIG_TAG] is True
        assert isinstance(tagged["as_json"], str)  # N1.5: model_dump_json(), not a map
    assert raw_call(port, wire.request("get_modality_config", api_token=TOKEN)) == {
        "video": {"delta_indices": [0], "modality_keys": ["video.front", "video.wrist"]},
        "state": {"delta_indices": [0], "modality_keys": ["state.single_arm", "state.gripper"]},
        "action": {"delta_indices": list(range(16)), "modality_keys": ["action.single_arm", "action.gripper"]},
        "language": {"delta_indices": [0], "modality_keys": ["annotation.human.task_description"]},
    }


# --- N1.6 --------------------------------------------------------------------------------------------------------
def test_n16_round_trip(servers, checkpoint, env):
    port = servers["n1.6"].port
    remote = make_policy(f"gr00t16:{port}")
    assert isinstance(remote, Gr00tN16Policy) and remote.name == f"gr00t16:localhost:{port}"
    local = VLAPolicy(checkpoint, n_action_steps=CHUNK_STEPS, device="cpu")
    worst = 0.0
    for scenario, seed in ((Scenario.parse("H,H"), 7), (Scenario.parse("P,-"), 8)):
        diff, _ = lockstep(env, remote, local, scenario, SEED_INSTRUCTIONS[1].text, seed)
        worst = max(worst, diff)
    remote.close()
    assert worst < 1e-5, f"N1.6 remote and in-process actions differ by {worst} rad"

    observation = {"video": {"front": np.zeros((1, 1, 32, 32, 3), np.uint8),
                             "wrist": np.zeros((1, 1, 32, 32, 3), np.uint8)},
                   "state": {"single_arm": np.zeros((1, 1, 5), np.float32),
                             "gripper": np.zeros((1, 1, 1), np.float32)},
                   "language": {"annotation.human.task_description": [["pick up the bread"]]}}
    action, info = raw_call(port, wire.request("get_action", {"observation": observation, "options": None}))
    assert action["single_arm"].shape == (1, 16, 5) and action["gripper"].shape == (1, 16, 1)
    assert action["single_arm"].dtype == np.float32 and info == {}
    assert raw_call(port, wire.request("reset", {"options": {"seed": 3}})) == {}
    config = raw_call(port, wire.request("get_modality_config"))
    assert config["video"]["modality_keys"] == ["front", "wrist"]
    assert config["action"]["delta_indices"] == list(range(16))
    assert config["state"]["modality_keys"] == config["action"]["modality_keys"] == ["single_arm", "gripper"]
    assert config["language"]["modality_keys"] == ["annotation.human.task_description"]


def test_n16_modality_config_rebuilds_as_upstreams_dataclass_with_action_configs(servers):
    """Isaac-GR00T N1.6's client rebuilds each config with ``ModalityConfig(**as_json)`` (gr00t/data/types.py): every
    field of the dataclass, and for actions one ActionConfig per key whose enums are looked up by *name*. Replay
    that on the raw reply: so100's arm is RELATIVE and its gripper ABSOLUTE (examples/SO100/so100_config.py)."""
    from enum import Enum

    Rep = Enum("ActionRepresentation", {"RELATIVE": "relative", "DELTA": "delta", "ABSOLUTE": "absolute"})
    Kind = Enum("ActionType", {"EEF": "eef", "NON_EEF": "non_eef"})
    Fmt = Enum("ActionFormat", {"DEFAULT": "default", "XYZ_ROT6D": "xyz+rot6d", "XYZ_ROTVEC": "xyz+rotvec"})
    fields = {"delta_indices", "modality_keys", "sin_cos_embedding_keys", "mean_std_embedding_keys", "action_configs"}
    with zmq.Context() as ctx, ctx.socket(zmq.REQ) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{servers['n1.6'].port}")
        sock.send(wire.pack(wire.request("get_modality_config")))
        assert sock.poll(20000), "the server did not answer"
        plain = msgpack.unpackb(sock.recv())
    for modality, tagged in plain.items():
        body = tagged["as_json"]
        assert tagged[wire.MODALITY_CONFIG_TAG] is True and set(body) == fields, modality  # ModalityConfig(**body)
        if modality != "action":
            assert body["action_configs"] is None
            continue
        configs = body["action_configs"]
        assert len(configs) == len(body["modality_keys"])  # upstream's __post_init__ asserts this
        parsed = [(Rep[c["rep"]], Kind[c["type"]], Fmt[c["format"]], c["state_key"]) for c in configs]
        assert dict(zip(body["modality_keys"], parsed)) == {
            "single_arm": (Rep.RELATIVE, Kind.NON_EEF, Fmt.DEFAULT, None),
            "gripper": (Rep.ABSOLUTE, Kind.NON_EEF, Fmt.DEFAULT, None)}


# --- grids: a gr00t: episode replays the vla: episode, across server restarts and under --workers --------------
GRID_CELLS = (Scenario.parse("H,H"), Scenario.parse("-,H"))
GRID_SEEDS = (0, 1)  # every instruction of a cell runs on the same seeds, so one seed comes back many times
SAME_ROW = [c for c in COLUMNS if c not in ("policy", "wall_seconds")]


def request_print(instruction: str, seed: int, chunk: int, front: np.ndarray, wrist: np.ndarray,
                  lerobot_state: np.ndarray) -> tuple:
    """What one get_action request carries, exactly: frames and state as bytes, the noise key and the text."""
    return (instruction, int(seed), int(chunk), hashlib.sha256(np.ascontiguousarray(front).tobytes()).hexdigest(),
            hashlib.sha256(np.ascontiguousarray(wrist).tobytes()).hexdigest(),
            np.asarray(lerobot_state, dtype=np.float64).tobytes())


def received_prints(records: Path, already: set[Path]) -> list[tuple]:
    """The get_action requests the --record-dir server received since ``already``, as request_print tuples."""
    prints = []
    for path in sorted(set(records.iterdir()) - already):
        request = wire.unpack(path.read_bytes())
        if request.get("endpoint") != "get_action":
            continue
        data, options = request["data"], request["options"]
        state = np.concatenate([data["state.single_arm"][0], data["state.gripper"][0]])
        prints.append(request_print(data[LANGUAGE_KEY][0], options["seed"], options["chunk"],
                                    data["video.front"][0], data["video.wrist"][0], state))
    return prints


class Recorded:
    """Drives a policy through one episode, keeping every action and, per chunk request, what the request
    should carry; ``before_step`` (step -> None) runs before that step's action (a server restart mid-episode)."""

    def __init__(self, policy, before_step=None):
        self.policy, self.before_step = policy, before_step
        self.name, self.abilities = policy.name, policy.abilities
        self.actions: list[np.ndarray] = []
        self.requests: list[tuple] = []

    def reset(self, instruction: str, seed: int) -> None:
        self.instruction, self.seed = instruction, seed
        self.policy.reset(instruction, seed)

    @property
    def done(self) -> bool:
        return self.policy.done

    def act(self, observation, info):
        step = len(self.actions)
        if self.before_step is not None:
            self.before_step(step)
        if step % CHUNK_STEPS == 0:
            self.requests.append(request_print(self.instruction, self.seed, step // CHUNK_STEPS, observation["front"],
                                               observation["wrist"], sim_to_lerobot(observation["state"])))
        action = self.policy.act(observation, info)
        self.actions.append(np.array(action, copy=True))
        return action


def run_grid(spec: str, out: Path, workers: int = 1, before_step=None) -> tuple[dict, dict]:
    """The grid through eval.grid.run. In process (workers=1) every episode's policy is wrapped in
    ``Recorded``; ``before_step(index, step)`` gets the episode's index in grid order. Returns the rows and
    the recordings, both keyed by (scenario, instruction, seed)."""
    cfg = grid.MatrixConfig(policies=(spec,), scenarios=GRID_CELLS, families=(), seeds=GRID_SEEDS,
                                  image_size=IMAGE_SIZE, max_steps=STEPS, out=out, workers=workers)
    recorded: dict[tuple, Recorded] = {}
    real_run_episode = grid.run_episode

    def recording_run_episode(env, policy, episode, max_steps):
        index = len(recorded)
        hook = None if before_step is None else (lambda step: before_step(index, step))
        wrapped = recorded[(episode.scenario.label, episode.instruction.text, str(episode.seed))] = \
            Recorded(policy, hook)
        return real_run_episode(env, wrapped, episode, max_steps)

    made = []

    def make_and_keep(name: str):
        made.append(make_policy(name))
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grid, "run_episode", recording_run_episode)
        patch.setattr(grid, "make_policy", make_and_keep)
        try:
            path = grid.run(cfg, progress=False, argv=["test_gr00t", spec])
        finally:  # run() leaves its policies open; a gr00t client collected in a cycle hangs in zmq_ctx_term
            for policy in made:
                getattr(policy, "close", lambda: None)()
    with path.open(newline="") as f:
        rows = {(r["scenario"], r["instruction"], r["seed"]): r for r in csv.DictReader(f)}
    assert len(rows) == len(cfg.episodes()) == len(GRID_CELLS) * len(SEED_INSTRUCTIONS) * len(GRID_SEEDS)
    assert all(r["error"] == "" and r["steps"] == str(STEPS) for r in rows.values()), rows
    return rows, recorded


@pytest.fixture(scope="module")
def vla_grid(checkpoint, tmp_path_factory) -> tuple[dict, dict]:
    """The reference: the same grid with the in-process vla: policy on the same checkpoint."""
    rows, recorded = run_grid(f"vla:{checkpoint}", tmp_path_factory.mktemp("vla_grid") / "out")
    seed0, seed1 = (recorded[(GRID_CELLS[0].label, SEED_INSTRUCTIONS[0].text, str(s))].actions for s in GRID_SEEDS)
    assert not np.array_equal(seed0, seed1)  # the flow noise moves the actions: comparing them means something
    return rows, recorded


def gr00t_spec(served: Served) -> str:
    return f"gr00t:127.0.0.1:{served.port}?n_action_steps={CHUNK_STEPS}&timeout_s=30"


def assert_same_rows(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, row in got.items():
        assert {c: row[c] for c in SAME_ROW} == {c: want[key][c] for c in SAME_ROW}, key


def restart(served: Served) -> None:
    served.proc.kill()
    served.proc.wait()
    served.start().wait_ready()  # the same port: the client's socket reconnects by itself


def test_a_gr00t_grid_replays_the_vla_grid_across_server_restarts(servers, vla_grid, tmp_path, monkeypatch):
    """The grid in process, with the server SIGKILLed and restarted between episodes (twice) and once mid-episode,
    at a chunk boundary: every row, every action and every request equals the in-process vla: run's, exactly."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    served, records = servers["n1.5"], servers["records"]
    want_rows, want = vla_grid
    restarts: list[tuple[int, int]] = []

    def maybe_restart(index: int, step: int) -> None:
        if (index, step) in ((1, 0), (5, 0), (3, CHUNK_STEPS)):  # before episodes 1 and 5; before chunk 1 of 3
            restart(served)
            restarts.append((index, step))

    already = set(records.iterdir())
    rows, got = run_grid(gr00t_spec(served), tmp_path / "out", before_step=maybe_restart)
    assert sorted(restarts) == [(1, 0), (3, CHUNK_STEPS), (5, 0)]
    assert_same_rows(rows, want_rows)
    assert got.keys() == want.keys()
    for key, episode in got.items():
        np.testing.assert_array_equal(np.array(episode.actions), np.array(want[key].actions), err_msg=str(key))
    # What the servers (three processes in turn) received is what the in-process policy saw, chunk for chunk.
    expected = [p for episode in want.values() for p in episode.requests]
    assert len(expected) == len(want) * 3
    assert Counter(received_prints(records, already)) == Counter(expected)


def test_a_gr00t_grid_with_two_workers_replays_the_vla_grid(servers, vla_grid, tmp_path, monkeypatch):
    """--workers 2: two client processes share one server, their requests interleaved; the rows equal the vla:
    grid's and the server received exactly the requests of the in-process run (the observations at every chunk
    boundary, so every action executed before it)."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)  # spawned workers inherit it
    served, records = servers["n1.5"], servers["records"]
    want_rows, want = vla_grid
    already = set(records.iterdir())
    rows, recorded = run_grid(gr00t_spec(served), tmp_path / "out", workers=2)
    assert recorded == {}  # the episodes really ran in the workers
    assert_same_rows(rows, want_rows)
    expected = [p for episode in want.values() for p in episode.requests]
    assert Counter(received_prints(records, already)) == Counter(expected)


# --- bad requests and failures -------------------------------------------------------------------------------------
def test_the_batched_vla_on_vector_envs_replays_the_sequential_grid(vla_grid, checkpoint, tmp_path, monkeypatch):
    """--num-envs on MuJoCo: one forward pass per chunk for every env that needs one, and an env is rendered only
    when its policy looks (a VLA looks once per chunk). Every row equals the sequential grid's."""
    from leisaac_tasks.env import SandwichEnv

    renders = []
    real_observe = SandwichEnv.observe
    monkeypatch.setattr(SandwichEnv, "observe", lambda self: renders.append(1) or real_observe(self))
    cfg = grid.MatrixConfig(policies=(f"vla:{checkpoint}",), scenarios=GRID_CELLS, families=(),
                                  seeds=GRID_SEEDS, image_size=IMAGE_SIZE, max_steps=STEPS, out=tmp_path / "out",
                                  num_envs=4)
    path = grid.run(cfg, progress=False, argv=["test_gr00t", "--num-envs", "4"])
    with path.open(newline="") as f:
        rows = {(r["scenario"], r["instruction"], r["seed"]): r for r in csv.DictReader(f)}
    assert_same_rows(rows, vla_grid[0])
    episodes = len(cfg.episodes())
    chunks = -(-STEPS // CHUNK_STEPS)  # requests per episode; the first one looks at the reset observation
    assert len(renders) == episodes * chunks  # a reset renders once, then one render per later chunk


def test_bad_requests_get_error_replies_and_the_server_keeps_serving(servers):
    port = servers["n1.5"].port
    assert raw_call(port, wire.request("ping")) == {"error": wire.UNAUTHORIZED}  # no token: upstream's exact reply
    assert raw_call(port, wire.request("ping", api_token="wrong")) == {"error": wire.UNAUTHORIZED}
    assert "not a GR00T msgpack message" in raw_call(port, b"\xc1 garbage")["error"]
    assert "must be a map" in raw_call(port, msgpack.packb([1, 2, 3]))["error"]
    assert raw_call(port, wire.request("fly", api_token=TOKEN))["error"].startswith("Unknown endpoint: fly")
    partial = {"video.front": np.zeros((1, 8, 8, 3), np.uint8), "state.single_arm": np.zeros((1, 5)),
               "state.gripper": np.zeros((1, 1)), "annotation.human.task_description": ["x"]}
    assert "video.wrist" in raw_call(port, wire.request("get_action", partial, TOKEN))["error"]
    wrong_dtype = {**partial, "video.wrist": np.zeros((1, 8, 8, 3), np.float32)}
    assert "uint8" in raw_call(port, wire.request("get_action", wrong_dtype, TOKEN))["error"]
    assert raw_call(port, wire.request("ping", api_token=TOKEN)) == wire.PING_REPLY


def test_wrong_token_is_refused_at_construction(servers):
    with pytest.raises(ServerUnavailable, match="rejected the API token") as caught:
        Gr00tN15Policy(port=servers["n1.5"].port, api_token="not-the-token")
    assert isinstance(caught.value, PolicyError)
    assert isinstance(caught.value, ValueError)  # run_matrix reports it in one line before touching results


def test_no_server_is_refused_at_construction(unused_port):
    start = time.monotonic()
    with pytest.raises(ServerUnavailable, match=f"no reply from the GR00T server at tcp://127.0.0.1:{unused_port}"):
        Gr00tN15Policy(host="127.0.0.1", port=unused_port, connect_timeout_s=0.5)
    assert time.monotonic() - start < 3.0


def test_an_error_reply_becomes_a_policy_error_row(servers, env):
    """The N1.5 client talking to the N1.6 server: the server answers with an error, once, not retried."""
    client = Gr00tN15Policy(port=servers["n1.6"].port, timeout_s=30, retries=3)
    episode = Episode("gr00t", Scenario.parse("H,-"), SEED_INSTRUCTIONS[0], seed=0)
    start = time.monotonic()
    row = run_episode(env, client, episode, max_steps=5)
    client.close()
    assert row["behaviour"] == "policy_error" and row["success"] == 0
    assert row["error"].startswith("ServerErrorReply:") and "--protocol n1.5" in row["error"]
    assert time.monotonic() - start < 20  # answered, so no timeout was waited out


def test_a_pre_msgpack_n15_server_gets_an_error_that_says_so(unused_port):
    """Isaac-GR00T N1.5 before msgpack (gr00t/eval/service.py's TorchSerializer) torch.load()s every request and,
    failing on ours, answers torch.save({"error": ...}). That is one clear line at construction, not 'check
    host/port'."""
    import io

    def serve(stop: threading.Event) -> None:
        with zmq.Context() as ctx, ctx.socket(zmq.REP) as sock:
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(f"tcp://127.0.0.1:{unused_port}")
            while not stop.is_set():
                if not sock.poll(50):
                    continue
                try:
                    torch.load(io.BytesIO(sock.recv()), weights_only=False)
                    reply = {"status": "ok"}
                except Exception as exc:  # noqa: BLE001  what the old server does with any request it can't load
                    reply = {"error": str(exc)}
                buffer = io.BytesIO()
                torch.save(reply, buffer)
                sock.send(buffer.getvalue())

    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(stop,), daemon=True)
    thread.start()
    try:
        with pytest.raises(ServerUnavailable, match="old torch.save protocol .*TorchSerializer") as caught:
            Gr00tN15Policy(host="127.0.0.1", port=unused_port, connect_timeout_s=5)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert "\n" not in str(caught.value) and "check host/port" not in str(caught.value)


class ErrorServer:
    """A stand-in server on a real REP socket: answers ping, answers everything else with ``reply``, and counts
    what it receives per endpoint."""

    def __init__(self, port: int, reply: bytes):
        self.port, self.reply, self.received = port, reply, Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        with zmq.Context() as ctx, ctx.socket(zmq.REP) as sock:
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(f"tcp://127.0.0.1:{self.port}")
            while not self.stop.is_set():
                if not sock.poll(50):
                    continue
                endpoint = wire.unpack(sock.recv()).get("endpoint")
                self.received[endpoint] += 1
                sock.send(wire.pack(wire.PING_REPLY) if endpoint == "ping" else self.reply)

    def close(self) -> Counter:
        self.stop.set()
        self.thread.join(timeout=5)
        return self.received


@pytest.mark.parametrize("reply", [wire.pack({"error": "model exploded"}), b"ERROR"], ids=["error-map", "bare-ERROR"])
def test_an_error_reply_is_sent_once_and_never_retried(unused_port, env, reply):
    """Counted at the server: one get_action per chunk request, however many retries the client allows."""
    server = ErrorServer(unused_port, reply)
    try:
        client = Gr00tN15Policy(host="127.0.0.1", port=unused_port, timeout_s=5, retries=3)
        episode = Episode("gr00t", Scenario.parse("H,-"), SEED_INSTRUCTIONS[0], seed=0)
        row = run_episode(env, client, episode, max_steps=5)
        client.close()
        connection = Connection(Endpoint("127.0.0.1", unused_port, timeout_s=5, retries=3))
        with pytest.raises(ServerErrorReply):
            connection.call("get_modality_config")
        connection.close()
    finally:
        received = server.close()
    assert row["behaviour"] == "policy_error" and row["error"].startswith("ServerErrorReply:"), row["error"]
    assert received == {"ping": 1, "get_action": 1, "get_modality_config": 1}, received


def test_a_slow_reply_is_retried_on_a_fresh_socket_and_never_mistaken_for_a_later_one(unused_port):
    """A stand-in server on a real REP socket answers its first request late: the client gives up on it, retries
    on a new socket and gets the answer to the retry, not the stale one."""
    seen: list[int] = []

    def slow_then_fast() -> None:
        with zmq.Context() as ctx, ctx.socket(zmq.REP) as sock:
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(f"tcp://127.0.0.1:{unused_port}")
            for delay in (1.5, 0.0):
                request = wire.unpack(sock.recv())
                seen.append(request["data"]["attempt_id"])
                time.sleep(delay)
                sock.send(wire.pack({"answer_to": len(seen)}))

    server = threading.Thread(target=slow_then_fast, daemon=True)
    server.start()
    connection = Connection(Endpoint("127.0.0.1", unused_port, timeout_s=0.5, retries=2))
    start = time.monotonic()
    reply = connection.call("get_action", {"attempt_id": 7})
    connection.close()
    server.join(timeout=5)
    assert seen == [7, 7]  # the same request, sent twice
    assert reply == {"answer_to": 2}  # the first (late) answer went to the closed socket
    assert 1.5 <= time.monotonic() - start < 4.0


def test_serve_refuses_bad_input_in_one_line(servers, checkpoint, tmp_path, capsys):
    assert serve.main(["--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "is not a VLA checkpoint" in capsys.readouterr().err
    assert serve.main(["--checkpoint", str(checkpoint), "--port", str(servers["n1.6"].port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen on 127.0.0.1:") and err.count("\n") == 1


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KillServerAt:
    """Drives a policy and SIGKILLs the server process just before step ``step`` (mid-episode)."""

    def __init__(self, policy, served: Served, step: int):
        self.policy, self.served, self.step = policy, served, step
        self.name, self.abilities = policy.name, policy.abilities
        self.steps, self.killed_at = 0, None

    def reset(self, instruction: str, seed: int) -> None:
        self.policy.reset(instruction, seed)

    @property
    def done(self) -> bool:
        return self.policy.done

    def act(self, observation, info):
        if self.steps == self.step:
            self.served.proc.kill()
            self.served.proc.wait()
            self.killed_at = time.monotonic()
        self.steps += 1
        return self.policy.act(observation, info)


def test_killed_server_costs_only_its_episode_and_a_restart_recovers(servers, env):
    """Last in the file: it kills the shared N1.5 server and leaves a restarted one behind."""
    served, timeout_s, retries = servers["n1.5"], 2.0, 1
    client = Gr00tN15Policy(port=served.port, api_token=TOKEN, timeout_s=timeout_s, retries=retries,
                            n_action_steps=CHUNK_STEPS)
    killer = KillServerAt(client, served, step=3)  # chunk 0 has arrived; chunk 1 (step 8) meets a dead server
    cell = Episode("gr00t", Scenario.parse("H,H"), Instruction("pick up the bread", Intent("place", "bread")), 1)
    row = run_episode(env, killer, cell, max_steps=STEPS)
    failed_after = time.monotonic() - killer.killed_at
    assert row["behaviour"] == "policy_error" and row["steps"] == CHUNK_STEPS
    assert row["error"].startswith("PolicyError: no reply from the GR00T server")
    assert f"({retries + 1} attempts)" in row["error"] and "policies.gr00t.serve" in row["error"]
    budget = timeout_s * (retries + 1)
    assert budget <= failed_after < budget + 3.0, failed_after  # it retried, then gave up on time

    served.start().wait_ready()  # same port; the client's next (fresh) socket reaches it
    row = run_episode(env, client, Episode("gr00t", Scenario.parse("H,-"), SEED_INSTRUCTIONS[0], 2), max_steps=STEPS)
    assert row["error"] == "" and row["behaviour"] != "policy_error" and row["steps"] == STEPS
    client.close()
