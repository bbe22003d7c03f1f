"""A virtual SO-101 servo chain: six Feetech STS3215s speaking the real wire protocol behind a pseudo-terminal.

Hardware-free runs of LeRobot's own SO-101 code (SO101Leader, FeetechMotorsBus, scservo_sdk, pyserial, its
calibration files) point the ``port`` at ``VirtualServoChain.port``. Only the servos are stand-ins.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty

import numpy as np

from leisaac_tasks.units import JOINT_HIGH, JOINT_LOW, JOINT_NAMES


class VirtualServoChain:
    """Six Feetech STS3215s on one bus, answering the real wire protocol (protocol 0) on a pty.

    LeRobot's FeetechMotorsBus opens the pty's device path with pyserial like any USB serial adapter, so
    everything above the tty (pyserial, scservo_sdk, FeetechMotorsBus, SO101Leader, calibration) is the real
    code. Each servo is a 256-byte control table; Present_Position is computed as the firmware does,
    ``actual encoder - Homing_Offset`` (sign-magnitude, bit 11). The encoder readings come from ``stream``:
    one sample per Present_Position sync read, i.e. one per control step; the last one holds.
    """

    def __init__(self, eeprom: dict[int, dict[str, int]], stream: list[dict[int, int]], reply_delay_s: float = 0.0):
        self.reply_delay_s = reply_delay_s  # > 0: a slow bus, or a serving thread kept waiting for a CPU
        self.regs = {sid: self._table(sid, **fields) for sid, fields in eeprom.items()}
        self.stream, self.sample = stream, 0
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self._buf = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def _table(sid: int, homing_offset: int, range_min: int, range_max: int) -> bytearray:
        t = bytearray(256)
        t[0:2] = bytes([3, 10])  # firmware 3.10
        t[3:5] = (777).to_bytes(2, "little")  # STS3215 model number
        t[5] = sid
        t[9:11], t[11:13] = range_min.to_bytes(2, "little"), range_max.to_bytes(2, "little")
        t[31:33] = (abs(homing_offset) | (0x800 if homing_offset < 0 else 0)).to_bytes(2, "little")
        return t

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self.master)
        os.close(self.slave)

    def _serve(self) -> None:
        while not self._stop.is_set():
            if select.select([self.master], [], [], 0.02)[0]:
                self._buf += os.read(self.master, 4096)
                self._parse()

    def _parse(self) -> None:
        buf = self._buf
        while (start := buf.find(b"\xff\xff")) >= 0 and len(buf) >= start + 4:
            del buf[:start]
            size = buf[3] + 4  # header, id, length byte, then `length` bytes
            if len(buf) < size:
                return
            packet = bytes(buf[:size])
            del buf[:size]
            if (~sum(packet[2:-1])) & 0xFF == packet[-1]:
                self._handle(packet[2], packet[4], packet[5:-1])

    def _handle(self, sid: int, instruction: int, p: bytes) -> None:
        if instruction == 0x01 and sid in self.regs:  # PING
            self._reply(sid)
        elif instruction == 0x02 and sid in self.regs:  # READ addr, len
            self._reply(sid, self._read(sid, p[0], p[1]))
        elif instruction == 0x03 and sid in self.regs:  # WRITE addr, data...
            self.regs[sid][p[0]:p[0] + len(p) - 1] = p[1:]
            self._reply(sid)
        elif instruction == 0x82:  # SYNC READ addr, len, ids...: each servo answers in turn
            if p[0] == 56:
                self.sample += 1
            for s in p[2:]:
                if s in self.regs:
                    self._reply(s, self._read(s, p[0], p[1]))
        elif instruction == 0x83:  # SYNC WRITE addr, len, (id, data)...: no answer
            for k in range(2, len(p), p[1] + 1):
                if p[k] in self.regs:
                    self.regs[p[k]][p[0]:p[0] + p[1]] = p[k + 1:k + 1 + p[1]]

    def _read(self, sid: int, addr: int, length: int) -> bytes:
        t = self.regs[sid]
        raw_offset = int.from_bytes(t[31:33], "little")
        offset = -(raw_offset & 0x7FF) if raw_offset & 0x800 else raw_offset
        encoder = self.stream[min(max(self.sample - 1, 0), len(self.stream) - 1)][sid]
        t[56:58] = ((encoder - offset) % 4096).to_bytes(2, "little")
        return bytes(t[addr:addr + length])

    def _reply(self, sid: int, data: bytes = b"") -> None:
        if self.reply_delay_s:
            time.sleep(self.reply_delay_s)
        body = bytes([sid, len(data) + 2, 0]) + data
        os.write(self.master, b"\xff\xff" + body + bytes([(~sum(body)) & 0xFF]))


class PhysicalLeader:
    """How the test's leader arm is built: each servo's horn is mounted at some offset, 4096 ticks per turn,
    and joint angle q (the sim's convention, radians) reads ``2047 + mount + q * 4096 / 2pi`` on the encoder."""

    MOUNT = (310, -420, 580, -77, 150, 400)
    TICKS_PER_RAD = 4096 / (2 * np.pi)

    def encoder(self, q: np.ndarray) -> dict[int, int]:
        return {i + 1: int(round(2047 + self.MOUNT[i] + q[i] * self.TICKS_PER_RAD)) for i in range(6)}

    def calibration(self) -> dict[str, dict[str, int]]:
        """What LeRobot's calibration procedure records on this arm: homing so mid-range reads 2047
        (``set_half_turn_homings``), then each joint's range (wrist roll: full turn)."""
        middle, low, high = self.encoder(np.zeros(6)), self.encoder(JOINT_LOW), self.encoder(JOINT_HIGH)
        cal = {}
        for i, name in enumerate(JOINT_NAMES):
            offset = middle[i + 1] - 2047
            lo, hi = (0, 4095) if name == "wrist_roll" else (low[i + 1] - offset, high[i + 1] - offset)
            cal[name] = {"id": i + 1, "drive_mode": 0, "homing_offset": offset, "range_min": lo, "range_max": hi}
        return cal
